"""Per-method table for docs/compression.md: size ratio, test WER before and after KD, wall time.

    .venv/bin/python scripts/compression_table.py --model models/conformer_ctc_base --corpus data/default

Each row is saved to docs/compression.json as soon as it is measured, and rows already there
are skipped, so an interrupted run resumes. `--refresh-sizes` recomputes the size ratio of
the rows already there (compression only, no WER), for when the size accounting changes.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import torch

from asrcompress.compression import DistillConfig, Policy, compress_model, size_report
from asrcompress.compression._distill import distill
from asrcompress.compression._run import load_kd_data
from asrcompress.data import load_manifest
from asrcompress.models import load_model, read_config
from asrcompress.objectives import DecoderConfig, evaluate


def _structured(ratio: float) -> list[dict]:
    return [{"pattern": "encoder.*.ffn*.sequential.1", "structured": {"ratio": ratio}},
            {"pattern": "encoder.*.conv_module.sequential.0", "structured": {"ratio": ratio}}]


ROWS: list[tuple[str, str, list[dict]]] = [
    # The combined policy and the middle strength of each method first: the script resumes,
    # so an interrupted run still has the most telling rows.
    ("combined", "4-bit all + FFN 50% sparse + FFN rank 50%", [
        {"global": True, "quant": {"bits": 4}},
        {"pattern": "encoder.*.ffn*", "prune": {"sparsity": 0.5}, "lowrank": {"rank_fraction": 0.5}},
    ]),
    ("combined", "4-bit all + FFN 50% sparse", [
        {"global": True, "quant": {"bits": 4}},
        {"pattern": "encoder.*.ffn*", "prune": {"sparsity": 0.5}},
    ]),
    ("quant linear", "8 bits", [{"global": True, "quant": {"bits": 8}}]),
    ("quant linear", "4 bits", [{"global": True, "quant": {"bits": 4}}]),
    ("prune", "sparsity 0.5", [{"global": True, "prune": {"sparsity": 0.5}}]),
    ("quant log", "4 bits", [{"global": True, "quant": {"bits": 4, "kind": "log"}}]),
    ("low-rank", "FFN rank 50%", [{"pattern": "encoder.*.ffn*", "lowrank": {"rank_fraction": 0.5}}]),
    ("cluster", "16 values", [{"global": True, "cluster": {"clusters": 16}}]),
    ("structured", "25% of FFN neurons + conv channels", _structured(0.25)),
    ("quant linear", "2 bits", [{"global": True, "quant": {"bits": 2}}]),
    ("prune", "sparsity 0.3", [{"global": True, "prune": {"sparsity": 0.3}}]),
    ("prune", "sparsity 0.7", [{"global": True, "prune": {"sparsity": 0.7}}]),
    ("quant log", "6 bits", [{"global": True, "quant": {"bits": 6, "kind": "log"}}]),
    ("quant log", "3 bits", [{"global": True, "quant": {"bits": 3, "kind": "log"}}]),
    ("low-rank", "FFN rank 75%", [{"pattern": "encoder.*.ffn*", "lowrank": {"rank_fraction": 0.75}}]),
    ("low-rank", "FFN rank 25%", [{"pattern": "encoder.*.ffn*", "lowrank": {"rank_fraction": 0.25}}]),
    ("cluster", "64 values", [{"global": True, "cluster": {"clusters": 64}}]),
    ("cluster", "4 values", [{"global": True, "cluster": {"clusters": 4}}]),
    ("structured", "10% of FFN neurons + conv channels", _structured(0.1)),
    ("structured", "50% of FFN neurons + conv channels", _structured(0.5)),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("models/conformer_ctc_base"))
    ap.add_argument("--corpus", type=Path, default=Path("data/default"))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-seconds", type=float, default=16.0)
    ap.add_argument("--json", type=Path, default=Path("docs/compression.json"))
    ap.add_argument("--markdown", type=Path, default=Path("docs/compression.md"))
    ap.add_argument("--only-render", action="store_true", help="rewrite the markdown table from the JSON")
    ap.add_argument("--refresh-sizes", action="store_true", help="recompute the size ratio of existing rows")
    args = ap.parse_args()
    if args.only_render:
        render(json.loads(args.json.read_text()), args.markdown)
        return

    base = load_model(args.model)
    dec = DecoderConfig.from_dict(read_config(args.model)["decoder"])
    test, _ = load_manifest(args.corpus / "test.jsonl")
    waves, targets = load_kd_data(args.corpus, 4000)
    doc = json.loads(args.json.read_text()) if args.json.exists() else {}
    if "base" not in doc:
        doc["base"] = {"wer": evaluate(base, args.model, test, dec)["wer"], "fp32_bytes": size_report(base)["total_bytes"]}
    doc.update({"command": "python " + " ".join(sys.argv), "kd_steps": args.steps,
                "kd_batch_seconds": args.batch_seconds, "machine": f"{platform.machine()}, {torch.get_num_threads()} threads"})
    rows = {(r["method"], r["strength"]): r for r in doc.get("rows", [])}
    if args.refresh_sizes:
        doc["base"]["fp32_bytes"] = size_report(base)["total_bytes"]
        doc["sizes_command"] = "python " + " ".join(sys.argv)
    for method, strength, rules in ROWS:
        if (method, strength) in rows and not args.refresh_sizes:
            continue
        policy = Policy.from_dict({"version": 1, "rules": rules})
        t0 = time.perf_counter()
        student, states, _ = compress_model(base, policy)
        t_compress = time.perf_counter() - t0
        ratio = size_report(student, states, fp32_bytes=doc["base"]["fp32_bytes"])["ratio"]
        if (method, strength) in rows:
            rows[(method, strength)]["ratio"] = round(ratio, 2)
            doc["rows"] = list(rows.values())
            args.json.write_text(json.dumps(doc, indent=2) + "\n")
            continue
        # evaluate() decodes with the model folder's lexicon and LM, which the base folder holds.
        wer0 = evaluate(student, args.model, test, dec)["wer"]
        kd = DistillConfig(temperature=2.0, alpha=0.5, steps=args.steps, lr=1e-4)
        kd_model = copy.deepcopy(student)
        summary = distill(kd_model, base, states, waves, targets, kd, batch_seconds=args.batch_seconds)
        wer1 = evaluate(kd_model, args.model, test, dec)["wer"]
        row = {"method": method, "strength": strength, "ratio": round(ratio, 2), "wer_no_recovery": round(wer0, 4),
               "wer_after_kd": round(wer1, 4), "compress_seconds": round(t_compress, 1),
               "kd_seconds": summary["seconds"]}
        rows[(method, strength)] = row
        doc["rows"] = list(rows.values())
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(json.dumps(row), flush=True)
        render(doc, args.markdown)
    render(doc, args.markdown)


def render(doc: dict, path: Path) -> None:
    """Write the table between the markers in docs/compression.md."""
    base = doc["base"]["wer"]
    lines = [f"Base model: test WER {base:.2%}, {doc['base']['fp32_bytes']:,} bytes in fp32. "
             f"KD: {doc['kd_steps']} steps, T=2, alpha=0.5, lr 1e-4, batches of {doc['kd_batch_seconds']:.0f} s "
             f"of audio; machine: {doc['machine']}.", "",
             "| method | strength | size ratio | test WER, no recovery | test WER after KD | compress s | KD s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    order = ["combined", "quant linear", "quant log", "prune", "cluster", "low-rank", "structured"]
    rows = sorted(doc.get("rows", []), key=lambda r: (order.index(r["method"]) if r["method"] in order else 99,
                                                      r["ratio"]))
    for r in rows:
        d0, d1 = 100 * (r["wer_no_recovery"] - base), 100 * (r["wer_after_kd"] - base)
        lines.append(f"| {r['method']} | {r['strength']} | {r['ratio']:.2f}x | {r['wer_no_recovery']:.2%} "
                     f"({d0:+.2f} pts) | {r['wer_after_kd']:.2%} ({d1:+.2f} pts) "
                     f"| {r['compress_seconds']} | {r['kd_seconds']} |")
    text = path.read_text()
    start, end = "<!-- table:start -->", "<!-- table:end -->"
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    path.write_text(head + start + "\n" + "\n".join(lines) + "\n" + end + tail)


if __name__ == "__main__":
    main()
