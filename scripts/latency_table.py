"""Predicted against measured host latency over random layer-wise policies, and the host
speed-ups of the example policies, for docs/latency.md and docs/latency.json.

    .venv/bin/python scripts/latency_table.py --model models/conformer_ctc_base \
        --profile hardware_profiles/host.yaml --n 50

With --levers: random policies of the CPU levers (blocks dropped, separable or Tucker-2 conv2,
FFN cuts, every kernel path) and the uniform int8 policies on each int8 path, for the
"Predictor and int8 paths on the CPU levers" section (docs/latency_levers.json):

    .venv/bin/python scripts/latency_table.py --levers --calibrate --seed 2 --n 50 \
        --work runs/latency-levers-s2

Policies are compressed without fine-tuning (latency does not depend on the weights' values)
and exported to ONNX under --work, which makes a rerun resume. All models are then timed
round-robin in one process, so the ratios are side by side.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path


from asrcompress.compression import Policy, PolicyError, compress_model, size_report
from asrcompress.export import Int8Paths, export_onnx
from asrcompress.hardware import graph_ops, load_profile, measure_latency, predict_ms
from asrcompress.hardware._predict import factors
from asrcompress.hardware._calibrate import host_description
from asrcompress.hardware._reference import fit_factors, reference_models
from asrcompress.models import load_model

EXAMPLES = {  # name -> policy file; the fp32 base is the reference
    "int8": "examples/policies/int8.yaml",
    "int4": "examples/policies/int4.yaml",
    "structured25_lowrank50": "examples/policies/structured25_lowrank50.yaml",
    "sparse50": "examples/policies/sparse50.yaml",
}
SECONDS = [2.0, 8.0]


def random_policy(rng: random.Random, layers: int) -> dict:
    """Layer-wise choices of every method that changes what runs (and some that do not)."""
    rules: list[dict] = []
    for i in range(layers):
        at = f"encoder.conformer_layers.{i}"
        if rng.random() < 0.5:
            rules.append({"pattern": f"{at}.ffn*.sequential.1", "structured": {"ratio": rng.choice([0.25, 0.5, 0.75])}})
        if rng.random() < 0.3:
            rules.append({"name": f"{at}.self_attn.in_proj", "structured": {"ratio": rng.choice([0.25, 0.5])}})
        if rng.random() < 0.4:
            rules.append({"name": f"{at}.conv_module.sequential.0", "structured": {"ratio": rng.choice([0.25, 0.5])}})
        if rng.random() < 0.4:
            rules.append({"pattern": f"{at}.ffn*.sequential.[14]", "lowrank": {"rank_fraction": rng.choice([0.25, 0.5])}})
        q = rng.choice([None, None, 8, 6, 4, 3, "log4"])
        prune = rng.random() < 0.3
        if q is not None or prune:
            rule: dict = {"pattern": f"{at}.*"}
            if q == "log4":
                rule["quant"] = {"bits": 4, "kind": "log"}
            elif q is not None:
                rule["quant"] = {"bits": q}
            if prune:
                rule["prune"] = {"sparsity": 0.5}
            rules.append(rule)
    if rng.random() < 0.3:
        rules.append({"name": "head", "quant": {"bits": rng.choice([8, 4])}})
    if not rules:
        rules.append({"global": True, "quant": {"bits": 8}})
    return {"version": 1, "rules": rules}


LEVER_EXAMPLES = {  # --levers: the int8 paths side by side (issue 17, acceptance 3)
    "int8": "examples/policies/int8.yaml",
    "int7_s8": "examples/policies/int7_s8.yaml",
}


def random_lever_policy(rng: random.Random, layers: int) -> dict:
    """Layer-wise draws of the levers a CPU rewards: blocks dropped, conv2 separable or Tucker-2,
    FFN neurons cut, and per-layer bits on every kernel path (u8 x u8 and u8 x s8 int8,
    MatMulNBits 2/4/8 bits at block 32/64/128)."""
    doc: dict = {"version": 1, "rules": []}
    rules = doc["rules"]
    drop = sorted(rng.sample(range(layers), rng.choice([0, 0, 1, 2, 3])))
    if drop:
        doc["depth"] = {"drop": drop}
    front = rng.choice([None, "separable1", "separable2", "tucker25", "tucker50"])
    if front and front.startswith("separable"):
        rules.append({"name": "subsampling.conv2", "separable": {"multiplier": int(front[-1]), "fit": "weights"}})
    elif front:
        rules.append({"name": "subsampling.conv2", "tucker": {"rank_fraction": int(front[-2:]) / 100}})
    for i in range(layers):
        if i in drop:
            continue
        at = f"encoder.conformer_layers.{i}"
        ratio = rng.choice([None, 0.25, 0.5, 0.75])
        if ratio:
            rules.append({"pattern": f"{at}.ffn*.sequential.1", "structured": {"ratio": ratio}})
        q = rng.choice([None, 8, 7, 6, "4b32", "4b64", "4b128", "3b32", "2b32", "8b32"])
        if q is not None:
            bits, _, group = str(q).partition("b")
            rules.append({"pattern": f"{at}.*", "quant": {"bits": int(bits), **({"group": int(group)} if group else {})}})
    if rng.random() < 0.5:
        rules.append({"name": "head", "quant": {"bits": rng.choice([8, 7, 4])}})
    if not rules and not drop:
        rules.append({"global": True, "quant": {"bits": 7}})
    return doc


def build(base, name: str, policy: Policy | None, work: Path, fp32_bytes: int, int8_paths=None) -> dict:
    path = work / f"{name}.onnx"
    meta_path = work / f"{name}.json"
    if path.exists() and meta_path.exists():
        return json.loads(meta_path.read_text())
    t0 = time.perf_counter()
    model, states = base, {}
    if policy is not None:
        model, states, _ = compress_model(base, policy)
    report = export_onnx(model, states, path, int8_paths=int8_paths)
    meta = {"name": name, "onnx": str(path), "policy": policy.to_dict() if policy else None,
            "size_ratio": round(size_report(model, states, fp32_bytes)["ratio"], 3),
            "kernels": sorted(set(report["layers"].values())), "export_s": round(time.perf_counter() - t0, 1)}
    meta_path.write_text(json.dumps(meta))
    return meta


def render(doc_path: Path, result: dict, wer: dict | None) -> None:
    """Write the results section of docs/latency.md from the JSON files."""
    by = {m["name"]: m for m in result["models"]}
    lines = [
        "## Results", "",
        f"Machine: {result['machine']}, {result['threads']} thread(s), median of {result['repeats']} interleaved "
        "runs. Command:", "", "```", result["command"], "```", "",
        "### Host speed-ups, measured side by side in one run (8 s input)", "",
        "| policy | deployed-size ratio | 2 s ms | 8 s ms | speed-up vs fp32 (8 s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    ref = by["fp32"]["measured_ms"]["8s"]
    for name in ("fp32", *EXAMPLES):
        m = by[name]
        lines.append(f"| {name} | {m['size_ratio']:.2f}x | {m['measured_ms']['2s']:.2f} | {m['measured_ms']['8s']:.2f} "
                     f"| {ref / m['measured_ms']['8s']:.2f}x |")
    lines += [
        "", "`sparse50` runs the same dense graph as fp32, so any difference from 1.00x is timing noise, "
        "and the predictor gives it exactly the fp32 latency.", "",
        "Why the speed-ups are small: the 2-D convolution front end (`subsampling.conv1/conv2`, fp32 in every "
        "policy) is about 40% of the fp32 model's time at 8 s by the predictor's breakdown, the MatMuls about 50%. "
        "int4 `MatMulNBits` at accuracy_level 0 dequantizes to fp32 and computes in fp32, so it saves memory "
        "traffic, which this model's 18 MB of weights barely strain, and no arithmetic. A policy that is to run "
        "much faster has to shrink the front end and the MatMul dimensions (structured pruning, low rank).", "",
        f"### Predicted against measured host latency: {result['n_policies']} random layer-wise policies", "",
        f"Each policy draws, per Conformer layer, structured pruning of FFN neurons, heads and conv channels, "
        "FFN low rank, linear 3/4/6/8-bit or log 4-bit quantization, and 50% sparsity (see `random_policy` in "
        f"the script). Predictions use `{result['profile']}`; both 2 s and 8 s inputs count "
        f"({result['n_predictions']} predictions).", "",
        f"* **within +-10%: {100 * result['predictor_within_10pct']:.1f}%** of predictions (target: 90%), with the "
        f"whole-graph correction fitted on the reference models timed in the same rounds "
        f"({_factors(result, 'run')}); with the factor stored at calibration time ({_factors(result, 'stored')}): "
        f"{100 * result['predictor_within_10pct_stored_factor']:.1f}%",
        f"* mean signed error {result['mean_signed_error_pct']:+.1f}%",
        f"* mean absolute error {result['mean_abs_error_pct']:.1f}%, worst {result['max_abs_error_pct']:.1f}%", "",
        "| policy | size ratio | measured 2 s | predicted 2 s | measured 8 s | predicted 8 s | error 8 s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in result["models"]:
        if m["name"].startswith("random"):
            err = 100 * (m["predicted_ms"]["8s"] / m["measured_ms"]["8s"] - 1)
            lines.append(f"| {m['name']} | {m['size_ratio']:.2f}x | {m['measured_ms']['2s']:.2f} | "
                         f"{m['predicted_ms']['2s']:.2f} | {m['measured_ms']['8s']:.2f} | "
                         f"{m['predicted_ms']['8s']:.2f} | {err:+.1f}% |")
    if wer:
        lines += ["", "### ONNX against PyTorch test WER", "",
                  f"{wer['utterances']} test utterances, the model's default decoder. Command:", "", "```",
                  wer["command"], "```", "",
                  "Both run one utterance at a time, as a deployment does. PyTorch's batched evaluation (the "
                  "`evaluate` default, used for the figures in `docs/benchmark.md` and `docs/compression.md`) "
                  "pads utterances, which changes the last frames' features and what the convolutions see, "
                  "so it differs by a few tenths of a point; it is shown for reference.", "",
                  "| policy (no fine-tuning) | PyTorch WER | ONNX WER | difference (points) | PyTorch batched |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for r in wer["rows"]:
            lines.append(f"| {r['policy']} | {100 * r['wer_torch']:.2f}% | {100 * r['wer_onnx']:.2f}% | "
                         f"{r['diff_points']:+.2f} | {100 * r['wer_torch_batched']:.2f}% |")
    _between(doc_path, "results", lines)


def _between(doc_path: Path, tag: str, lines: list[str]) -> None:
    """Replace what lies between <!-- tag:start --> and <!-- tag:end --> (appended if absent)."""
    text = doc_path.read_text() if doc_path.exists() else ""
    start, end = f"<!-- {tag}:start -->", f"<!-- {tag}:end -->"
    if start not in text:
        text = text.rstrip("\n") + f"\n\n{start}\n{end}\n"
    head, rest = text.split(start)
    doc_path.write_text(head + start + "\n" + "\n".join(lines) + "\n" + end + rest.split(end)[1])


def _factors(result: dict, which: str) -> str:
    """A result's whole-graph factors: one number (before the groups) or one per group."""
    f = result.get(f"{which}_factors", result.get(f"{which}_factor"))
    return ", ".join(f"{g} {v:.3f}" for g, v in f.items()) if isinstance(f, dict) else f"{f:.3f}"


def render_levers(doc_path: Path, result: dict, wer: dict | None = None) -> None:
    """The --levers section of docs/latency.md: the int8 paths side by side and the predictor
    on random lever policies."""
    by = {m["name"]: m for m in result["models"]}
    ref = by["fp32"]["measured_ms"]
    lines = [
        "## Predictor and int8 paths on the CPU levers", "",
        f"Machine: {result['machine']}, {result['threads']} thread(s), median of {result['repeats']} interleaved "
        "runs, every model in one loop with the fp32 base. Command:", "", "```", result["command"], "```", "",
        "### u8 x u8 against u8 x s8, the whole model", "",
        "The same uniform policy exported on each `DynamicQuantizeMatMul` path (`_u8`, `_s8`: forced), and "
        "as the export chooses per layer from the profile's measured `int8_paths` table (no suffix). "
        "8-bit on s8 appears only where calibration found full-range s8 exact on this machine.", "",
        "| policy | int8 MatMul path | 2 s ms | 8 s ms | speed-up vs fp32 (2 s) | speed-up vs fp32 (8 s) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        f"| fp32 | fp32 | {ref['2s']:.2f} | {ref['8s']:.2f} | 1.00x | 1.00x |",
    ]
    for name, m in by.items():
        if name == "fp32" or name.startswith("random"):
            continue
        ms = m["measured_ms"]
        kern = ", ".join(k.replace("int8 DynamicQuantizeMatMul ", "") for k in m["kernels"] if "Dynamic" in k)
        lines.append(f"| {name} | {kern} | {ms['2s']:.2f} | {ms['8s']:.2f} | {ref['2s'] / ms['2s']:.2f}x | "
                     f"{ref['8s'] / ms['8s']:.2f}x |")
    lines += [
        "", f"### Predicted against measured: {result['n_policies']} random lever policies", "",
        "Each policy draws blocks dropped (0-3), conv2 separable (multiplier 1 or 2) or Tucker-2 (rank 25% or "
        "50%) or kept, per block an FFN cut (25/50/75%) and bits on every kernel path (8, 7, 6 on int8; 4-bit "
        "at block 32/64/128, 3- and 2-bit at block 32 and 8-bit at block 32 on MatMulNBits), and the head's "
        f"bits (`random_lever_policy` in the script). Predictions use `{result['profile']}`; 2 s and 8 s "
        f"inputs both count ({result['n_predictions']} predictions). The whole-graph correction "
        "(`measured = sum over groups of factor x the group's operators + per-operator cost x operators`, "
        "groups: MatMuls, the 2-D conv front end, the rest) is fitted on the reference models only (random-"
        f"initialised default Conformers: {', '.join(r.replace('reference_', '') for r in result.get('references', []))}; "
        "`hardware/_reference.py`), timed in the same loop.", "",
        f"* **within +-10%: {100 * result['predictor_within_10pct']:.1f}%** of predictions (target: 90%), "
        f"correction fitted in the same loop: factors {_factors(result, 'run')}, "
        f"{result.get('run_per_node_us', 0):.2f} us per operator",
        f"* with the correction stored at calibration time ({_factors(result, 'stored')}, "
        f"{result.get('stored_per_node_us', 0):.2f} us): {100 * result['predictor_within_10pct_stored_factor']:.1f}%",
    ]
    if "predictor_within_10pct_one_factor" in result:
        lines.append(
            f"* the one-factor correction it replaced, fitted on the same timings: "
            f"{100 * result['predictor_within_10pct_one_factor']:.1f}% on every reference (factor "
            f"{result['one_factor'][0]:.3f}), {100 * result['predictor_within_10pct_one_factor_3refs']:.1f}% on "
            f"fp32/int8/int4 alone (factor {result['one_factor'][1]:.3f})")
    lines += [
        f"* mean signed error {result['mean_signed_error_pct']:+.1f}%, mean absolute "
        f"{result['mean_abs_error_pct']:.1f}%, worst {result['max_abs_error_pct']:.1f}%", "",
        "| policy | measured 2 s | predicted 2 s | error 2 s | measured 8 s | predicted 8 s | error 8 s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, m in by.items():
        if name.startswith("random"):
            e2, e8 = (100 * (m["predicted_ms"][k] / m["measured_ms"][k] - 1) for k in ("2s", "8s"))
            lines.append(f"| {name} | {m['measured_ms']['2s']:.2f} | {m['predicted_ms']['2s']:.2f} | {e2:+.1f}% | "
                         f"{m['measured_ms']['8s']:.2f} | {m['predicted_ms']['8s']:.2f} | {e8:+.1f}% |")
    _between(doc_path, "predictor-levers", lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("models/conformer_ctc_base"))
    ap.add_argument("--profile", type=Path, default=Path("hardware_profiles/host.yaml"))
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--work", type=Path, default=Path("/tmp/asrcompress_latency"))
    ap.add_argument("--out", type=Path, default=Path("docs/latency.json"))
    ap.add_argument("--only-render", action="store_true", help="Rewrite docs/latency.md from the JSON files")
    ap.add_argument("--levers", action="store_true",
                    help="Random policies of the CPU levers (depth, separable/Tucker conv2, FFN cuts, every "
                         "kernel path) and the int8 paths side by side; writes docs/latency_levers.json")
    ap.add_argument("--calibrate", action="store_true",
                    help="Calibrate --profile on this machine first (micro-benchmarks + reference model), "
                         "so calibration and measurement see the same machine state")
    ap.add_argument("--reuse-measured", action="store_true",
                    help="Keep the measured figures of --out and only predict again (after re-calibrating)")
    args = ap.parse_args()
    wer_path = args.out.parent / "onnx_wer.json"
    wer = json.loads(wer_path.read_text()) if wer_path.exists() else None
    if args.levers and args.out == Path("docs/latency.json"):
        args.out = Path("docs/latency_levers.json")
    # The docs' page is rewritten only for the docs' own JSON; an --out elsewhere gets its own
    # page beside it (a side run must not replace the documented tables).
    page = Path("docs/latency.md") if args.out.parent == Path("docs") else args.out.with_suffix(".md")
    if args.only_render:
        (render_levers if args.levers else render)(page, json.loads(args.out.read_text()), wer)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    if args.calibrate:
        from asrcompress.hardware._write import write_profile

        print("calibrating", args.profile, file=sys.stderr)
        write_profile(args.profile, args.profile.stem, 1, quick=False, reference=True)
    profile = load_profile(args.profile)
    base = load_model(args.model)
    fp32 = size_report(base)["total_bytes"]
    rng = random.Random(args.seed)
    items = [build(base, "fp32", None, args.work, fp32)]
    paths = profile.int8_paths if args.levers else None
    if args.levers:  # the same uniform policy on each int8 path, then the table's own choice
        for name, path in LEVER_EXAMPLES.items():
            pol = Policy.load(path)
            items.append(build(base, name, pol, args.work, fp32, paths))
            for force in ("u8", "s8"):
                if force == "s8" and name == "int8" and not (paths and paths.s8_full_range_exact):
                    continue  # full-range s8 is not exact on this machine
                forced = dataclasses.replace(paths or Int8Paths(), force=force)
                items.append(build(base, f"{name}_{force}", pol, args.work, fp32, forced))
    else:
        for name, path in EXAMPLES.items():
            items.append(build(base, name, Policy.load(path), args.work, fp32))
    draw = random_lever_policy if args.levers else random_policy
    made = 0
    while made < args.n:
        doc = draw(rng, base.cfg.num_layers)
        try:
            policy = Policy.from_dict(doc)
            items.append(build(base, f"random{made:03d}", policy, args.work, fp32, paths))
        except PolicyError as e:  # a contradictory random draw: draw again
            print(f"redraw: {e}", file=sys.stderr)
            continue
        made += 1
        print(f"built {made}/{args.n}", file=sys.stderr)
    if args.reuse_measured:
        old = json.loads(args.out.read_text())
        by_old = {m["name"]: m["measured_ms"] for m in old["models"]}
        for item in items:
            item["measured_ms"] = by_old[item["name"]]
        command = old["command"] + "  # predictions redone: python " + " ".join(sys.argv)
        refs = reference_models(args.work)
        ref_ms = [{float(k[:-1]): v for k, v in m.items()} for m in old["reference_measured_ms"]]
        run_factor, run_node = fit_factors(profile.calibration, profile.threads, refs, ref_ms)
    else:
        # The reference models that fit the whole-graph factor are timed in the same rounds,
        # so the factor sees the machine as the policies do (a shared VM drifts by ~10%).
        refs = reference_models(args.work)
        print(f"timing {len(items)} models + {len(refs)} references x {SECONDS} s, {args.repeats} rounds",
              file=sys.stderr)
        measured = measure_latency([Path(i["onnx"]) for i in items] + refs, profile.threads, SECONDS,
                                   repeats=args.repeats)
        for item, ms in zip(items, measured):
            item["measured_ms"] = {f"{s:g}s": round(ms[s], 3) for s in SECONDS}
        ref_ms = measured[len(items):]
        run_factor, run_node = fit_factors(profile.calibration, profile.threads, refs, ref_ms)
        command = "python " + " ".join(sys.argv)
    # Beside the grouped correction, the one-factor one it replaced, fitted on the same timings:
    # on every reference, and on the three references it used to have (fp32, int8, int4).
    corrections = {"predicted_ms": (run_factor, run_node),
                   "predicted_one_factor_ms": fit_factors(profile.calibration, profile.threads, refs, ref_ms, False),
                   "predicted_one_factor_3refs_ms": fit_factors(profile.calibration, profile.threads, refs[:3],
                                                                ref_ms[:3], False)}

    def corrected(groups: dict[str, float], per_node: float):
        node = {"c0_us": per_node, "c_flop_ns": 0.0, "c_weight_ns": 0.0, "c_act_ns": 0.0}
        return dataclasses.replace(profile, calibration_factors=groups, calibration={**profile.calibration, "node": node})

    for item in items:
        ops = {s: graph_ops(Path(item["onnx"]), s) for s in SECONDS}
        for key, (groups, per_node) in corrections.items():
            prof = corrected(groups, per_node)
            item[key] = {f"{s:g}s": round(predict_ms(ops[s], prof)[0], 3) for s in SECONDS}
        item["predicted_stored_factor_ms"] = {f"{s:g}s": round(predict_ms(ops[s], profile)[0], 3) for s in SECONDS}
    rand = [i for i in items if i["name"].startswith("random")]

    def share(key: str) -> tuple[float, list[float]]:
        errs = [i[key][k] / i["measured_ms"][k] - 1 for i in rand for k in i["measured_ms"]]
        return sum(abs(e) <= 0.10 for e in errs) / len(errs), errs

    within, errors = share("predicted_ms")
    within_stored, _ = share("predicted_stored_factor_ms")
    within_one, _ = share("predicted_one_factor_ms")
    within_one3, _ = share("predicted_one_factor_3refs_ms")
    ref = items[0]["measured_ms"]["8s"]
    by = {i["name"]: i for i in items}
    result = {
        "n_policies": len(rand),
        "n_predictions": len(errors),
        "predictor_within_10pct": round(within, 4),
        "run_factors": {g: round(f, 4) for g, f in run_factor.items()},
        "run_per_node_us": round(run_node, 4),
        "stored_per_node_us": profile.calibration.get("node", {}).get("c0_us", 0.0),
        "reference_measured_ms": [{f"{k:g}s": round(v, 3) for k, v in m.items()} for m in ref_ms],
        "stored_factors": factors(profile),
        "predictor_within_10pct_stored_factor": round(within_stored, 4),
        "predictor_within_10pct_one_factor": round(within_one, 4),
        "predictor_within_10pct_one_factor_3refs": round(within_one3, 4),
        "one_factor": [round(f, 4) for f in (corrections["predicted_one_factor_ms"][0]["matmul"],
                                              corrections["predicted_one_factor_3refs_ms"][0]["matmul"])],
        "references": [p.stem for p in refs],
        "mean_signed_error_pct": round(100 * sum(errors) / len(errors), 2),
        "mean_abs_error_pct": round(100 * sum(abs(e) for e in errors) / len(errors), 2),
        "max_abs_error_pct": round(100 * max(abs(e) for e in errors), 2),
        **({f"speedup_{n}": round(ref / by[n]["measured_ms"]["8s"], 3) for n in by if n != "fp32"
            and not n.startswith("random")} if args.levers else {
            "speedup_int8": round(ref / by["int8"]["measured_ms"]["8s"], 3),
            "speedup_int4": round(ref / by["int4"]["measured_ms"]["8s"], 3),
            "speedup_structured_lowrank": round(ref / by["structured25_lowrank50"]["measured_ms"]["8s"], 3),
            "speedup_sparse50": round(ref / by["sparse50"]["measured_ms"]["8s"], 3)}),
        "speedup_at": "8 s input",
        "profile": str(args.profile),
        "threads": profile.threads,
        "repeats": args.repeats,
        "machine": host_description(),
        "command": command,
        "models": items,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    (render_levers if args.levers else render)(page, result, wer)
    print(json.dumps({k: v for k, v in result.items() if k != "models"}, indent=1))


if __name__ == "__main__":
    main()
