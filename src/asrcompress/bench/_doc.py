"""docs/benchmarks.md and the benchmark's own MLflow experiment (asrcompress/bench)."""

from __future__ import annotations

import json
from pathlib import Path

from .._outputs import write_text


PEER_NOTES = {
    "ort_quantize_dynamic": "ONNX Runtime's own dynamic int8 quantizer with its defaults (QInt8 weights, Conv "
                            "included as ConvInteger), applied to the fp32 export; on this AVX2 host without VNNI "
                            "the ConvInteger front end is slower than fp32, so its speed-up is below 1.",
    "ort_matmul_nbits": "ONNX Runtime's MatMulNBitsQuantizer (4-bit weight-only, block 32), the fp32 export's "
                        "MatMuls only.",
    "torch_ao_dynamic": "torch.ao dynamic int8 on every nn.Linear (torch skips attention's out_proj); runs in "
                        "PyTorch, so its WER and speed-up are against PyTorch fp32 measured in the same loop.",
    "intel_neural_compressor": "neural-compressor / neural-compressor-pt 3.10 install and run on CPU. INC 3.x no "
                               "longer has an ONNX Runtime backend (it moved to the separate onnx/neural-compressor "
                               "project), so INC tunes the PyTorch model: accuracy-aware `autotune` over RTN "
                               "weight-only configs (int4 group 32, int8), tolerance 5% relative dev WER, "
                               "attention's out_proj left fp32 (torch's MultiheadAttention reads its weight "
                               "directly). Scored in PyTorch against PyTorch fp32.",
    "olive": "olive-ai 0.13.0 installs and imports on CPU but cannot run this search: WER needs a custom metric "
             "(Olive has no speech metric), and in 0.13.0 Metric.validate_backend sets a custom metric's backend "
             "to None, after which Metric.serialize_backend calls None.model_dump() when the engine serialises "
             "its config, before any pass runs (olive/evaluator/metric.py). A latency-only search got past that "
             "and failed in Olive's resource discovery (AttributeError in config_utils._missing_). Olive 0.13 "
             "also dropped `pass_flows`, so one run cannot choose between int8 and 4-bit passes. "
             "scripts/peers/olive_tune.py reproduces the failure on every bench run.",
}


def _f(v, fmt: str = "{:.2f}", none: str = "none within 5%") -> str:
    return none if v is None else fmt.format(v)


def write_markdown(path: Path, doc: dict) -> None:
    t = doc["targets"]
    b = doc["base"]
    lines = [
        "# Benchmark: the search against random search, uniform policies and peer tools",
        "",
        "Produced by one command (all arms in one run, scored side by side):",
        "",
        f"    {doc['command']}",
        "",
        f"Machine: {doc['machine']}. Run {doc['stamp']} at commit {doc.get('commit', 'unknown')}, "
        f"{doc.get('wall_minutes', '?')} wall-minutes, "
        f"{doc['total_cpu_minutes']} CPU-minutes of search/tuning in the arms, {doc['run_cpu_minutes']} "
        "CPU-minutes for the whole run (with scoring).",
        "",
        f"Space `{doc['space']}`, corpus `{doc['corpus']}`; each search arm had "
        f"{doc['budget_cpu_minutes_per_search_arm']} CPU-minutes on {doc['workers']} worker(s).",
        "",
        "How every point is scored, the same way for every arm: **test WER** with greedy CTC decoding, one "
        f"utterance at a time, on {b['utterances']} test utterances, run on the deployed ONNX model "
        "(PyTorch for torch.ao and INC, compared with PyTorch fp32); **host latency** of one 8 s utterance, "
        "1 thread, median, all ONNX models timed interleaved in one loop; **size ratio** = fp32 bytes / stored "
        "bytes (asrcompress arms: the format-aware deployed size of `asrcompress inspect`; ONNX peers: the "
        "tensors their ONNX file stores, against the fp32 export's). Best figures count only points with test "
        "WER at most 5% relative above the base. The `.onnx size ratio` column is the same count for every "
        "ONNX point (the tensors the exported file stores): asrcompress's export keeps "
        "sparsity and clustering dense fp32, so for those it is below the format-aware ratio. Hypervolume: objectives (WER / base, latency / base, size / "
        f"base), reference point {doc['reference_point']}.",
        "",
        f"Base model: test WER {100 * b['test_wer']:.2f}% (ONNX, greedy), host latency {b['latency_ms']:.1f} ms "
        "for 8 s.",
        "",
        "| arm | hypervolume | best size ratio | best .onnx size ratio | best speed-up | CPU-minutes | "
        "points (within 5%) | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in doc["arms"].items():
        note = r["note"] + (f" **error:** {r['error']}" if r["error"] else "")
        lines.append(f"| {name} | {r['hypervolume']:.4f} | {_f(r['best_size_ratio'], '{:.2f}x')} | "
                     f"{_f(r['best_onnx_size_ratio'], '{:.2f}x', '-')} | {_f(r['best_speedup'], '{:.2f}x')} | {r['cpu_minutes']:.1f} | {r['points']} "
                     f"({r['points_within_5pct']}) | {note.replace('|', '/')} |")
    hv = t["hv_vs_random"]
    lines += [
        "",
        "## Targets",
        "",
        f"- Search front dominates every uniform and peer point: **{'met' if t['front_dominates_uniform_and_peers'] else 'missed'}**"
        + ("" if t["front_dominates_uniform_and_peers"] else f" (not dominated: {', '.join(doc['not_dominated_by_search'])})"),
        f"- Hypervolume at least 1.15x random search's: **{'met' if t['hv_vs_random_met'] else 'missed'}** "
        f"({_f(hv, '{:.3f}x', 'random search has zero hypervolume')})",
        f"- At least 12x smaller at test WER within 5%: **{'met' if t['size_ratio_met'] else 'missed'}** "
        f"(best {_f(doc['arms']['search']['best_size_ratio'], '{:.2f}x')})",
        f"- At least 3x lower host latency at test WER within 5%: **{'met' if t['speedup_met'] else 'missed'}** "
        f"(best {_f(doc['arms']['search']['best_speedup'], '{:.2f}x')})",
        f"- Within one CPU-hour of search: **{'yes' if t['within_cpu_hour'] else 'no'}** "
        f"({doc['arms']['search']['cpu_minutes']:.1f} CPU-minutes)",
        "",
        "Figure: " + ", ".join(f"`{f}`" for f in doc["figures"]),
        "",
        "## Peers",
        "",
        *[f"- **{name}**: {text}" for name, text in PEER_NOTES.items() if name in doc["arms"]],
        "",
        "## Every point",
        "",
        "| arm | point | test WER | WER / base | speed-up | size ratio | size basis | .onnx size ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in doc["all_points"]:
        if "wer_rel" not in p:
            continue
        lines.append(f"| {p['arm']} | {p['label']} | {100 * p['test_wer']:.2f}% | {p['wer_rel']:.3f} | "
                     f"{p['speedup']:.2f}x | {p['size_ratio']:.2f}x | {p['size_basis']} | "
                     f"{_f(p.get('onnx_size_ratio'), '{:.2f}x', '-')} |")
    write_text(path, "\n".join(lines) + "\n")


def log_mlflow(uri: str, doc: dict, figures: list[str], stamp: str) -> str:
    """One parent run per benchmark, one child per arm, in the experiment asrcompress/bench."""
    from ..tracking import Tracker

    tr = Tracker(uri, "bench")
    parent = tr.create_run(f"bench-{stamp}", {"command": doc["command"][:500]})
    for name, r in doc["arms"].items():
        child = tr.create_run(name, {"kind": r["kind"], "error": r["error"][:500]}, parent=parent)
        for k in ("hypervolume", "best_size_ratio", "best_speedup", "cpu_minutes", "wer_base"):
            if r[k] is not None:
                tr.log_metric(child, k, float(r[k]))
        tr.finish_run(child)
    for f in figures:
        if Path(f).exists():
            tr.log_artifact(parent, Path(f))
    tr.log_text(parent, json.dumps(doc, indent=1, default=str), "benchmarks.json")
    hv = doc["targets"]["hv_vs_random"]
    if hv is not None:
        tr.log_metric(parent, "hv_search_over_random", float(hv))
    tr.finish_run(parent)
    return parent
