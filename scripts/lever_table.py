"""The levers, side by side against the fp32 ONNX base: each policy compressed from the base
model (calibration audio and any distillation from the corpus's train split), exported, and
scored like a bench point: test WER with the deployed decoder and greedy (paired bootstrap 95%
intervals of the ratio to the base), the bytes its .onnx stores, and latency at 8 s and 2 s,
every model and the base timed in one interleaved loop on 1 thread. Peers run on the same fp32
export. Resumable: models and scores are kept in --workdir.

    .venv/bin/python scripts/lever_table.py --corpus data/default --workdir runs/levers \\
        --policy int4_block32_gptq --policy int3_block32_gptq --policy int4 --peer ort_nbits_b128_a0 \\
        --out docs/levers.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from asrcompress._shipped import base_model, resolve
from asrcompress.bench._peers import ONNX_PEERS, onnx_stored_bytes
from asrcompress.bench._score import LATENCY_SECONDS, TestSet, onnx_emissions, onnx_latencies, score_point
from asrcompress.bench._state import State
from asrcompress.bench._stats import wer_ratio_ci
from asrcompress.compression import Policy, Recovery, compress_and_recover, load_kd_data, write_compression
from asrcompress.export import export_onnx
from asrcompress.models import features_of, load_model, save_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--test", type=Path, default=None, help="test manifest (default: the corpus's test.jsonl)")
    ap.add_argument("--policy", action="append", default=[], help="policy file or shipped name; NAME:STEPS "
                    "overrides its distillation steps")
    ap.add_argument("--peer", action="append", default=[], choices=sorted(ONNX_PEERS))
    ap.add_argument("--kd-utterances", type=int, default=2000)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=20, help="interleaved timing rounds (the median is reported)")
    ap.add_argument("--no-latency", action="store_true", help="build and score only, no timing (time them in a later, quiet run)")
    a = ap.parse_args()
    model_dir = a.model or base_model()
    state = State(a.workdir, {"model": str(model_dir)})
    base = load_model(model_dir)
    base_onnx = a.workdir / "base.onnx"
    if not base_onnx.is_file():
        export_onnx(base, {}, base_onnx)
    kd = load_kd_data(a.corpus, a.kd_utterances)
    rows = []
    for spec in a.policy:
        name, _, steps = spec.partition(":")
        label = Path(name).stem + (f" + {steps} KD steps" if steps else "")
        out = a.workdir / label.replace(" ", "_").replace("+", "kd")
        if not (out / "model.onnx").is_file():
            policy = Policy.load(resolve("policy", Path(name)))
            if steps:
                doc = policy.to_dict()
                doc["distill"] = {**(doc.get("distill") or {}), "steps": int(steps)}
                doc["distill"].pop("_version", None)
                policy = Policy.from_dict(doc, source=name)
            t0 = time.perf_counter()
            built = compress_and_recover(base, policy, kd, Recovery(seed=0))
            out.mkdir(parents=True, exist_ok=True)
            save_model(built.model, out)
            write_compression(out, model_dir, policy, built.states, {"compress_seconds": time.perf_counter() - t0})
            export_onnx(built.model, built.states, out / "model.onnx")
            print(f"{label}: built in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        rows.append({"label": label, "file": out / "model.onnx"})
    for peer in a.peer:
        out = a.workdir / f"{peer}.onnx"
        if not out.is_file():
            ONNX_PEERS[peer][1](base_onnx, out, None)
        rows.append({"label": f"peer {peer}", "file": out})
    test = TestSet.load(a.test or a.corpus / "test.jsonl", model_dir)
    spec = features_of(base)
    base_err = score_point(state, base_onnx, onnx_emissions(base_onnx, spec), test)
    for r in rows:
        r["errors"] = score_point(state, r["file"], onnx_emissions(r["file"], spec), test)
    lat, load = ([None] * (len(rows) + 1), None) if a.no_latency else \
        onnx_latencies([base_onnx, *[r["file"] for r in rows]], print, rounds=a.rounds)
    stored = onnx_stored_bytes(base_onnx)
    words = sum(test.words)
    doc = {"command": " ".join(["scripts/lever_table.py", *sys.argv[1:]]), "test": str(test.manifest),
           "utterances": len(test.refs), "load_average_when_timed": load, "rounds": None if a.no_latency else a.rounds,
           "base": {"wer": {d: sum(e) / words for d, e in base_err.items()}, "bytes": stored,
                    "latency_ms": lat[0] and {f"{s:g}s": lat[0][s] for s in LATENCY_SECONDS}}, "rows": []}
    print(f"base: WER {100 * doc['base']['wer']['deployed']:.2f}% deployed, {100 * doc['base']['wer']['greedy']:.2f}% "
          f"greedy; {stored / 1e6:.2f} MB" + ("" if a.no_latency else f"; {lat[0][8.0]:.1f} ms at 8 s (load {load:.2f})"))
    for r, t in zip(rows, lat[1:]):
        row = {"label": r["label"], "bytes_ratio": stored / onnx_stored_bytes(r["file"]),
               "speedup_8s": t and lat[0][8.0] / t[8.0], "speedup_2s": t and lat[0][2.0] / t[2.0]}
        for d in ("deployed", "greedy"):
            ratio, ci = wer_ratio_ci(base_err[d], r["errors"][d], test.words)
            row[d] = {"wer": sum(r["errors"][d]) / words, "ratio": ratio, "ci": ci}
        doc["rows"].append(row)
        speed = "not timed" if t is None else f"{row['speedup_8s']:.2f}x / {row['speedup_2s']:.2f}x faster (8 s / 2 s)"
        print(f"{r['label']:38s} WER x{row['deployed']['ratio']:.3f} [{row['deployed']['ci'][0]:.3f}, "
              f"{row['deployed']['ci'][1]:.3f}] deployed, x{row['greedy']['ratio']:.3f} greedy; "
              f"{row['bytes_ratio']:.2f}x smaller; {speed}")
    if a.out:
        a.out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
