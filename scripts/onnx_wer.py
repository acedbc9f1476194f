"""Test WER of the PyTorch model against its ONNX export, side by side, for docs/latency.md.

    .venv/bin/python scripts/onnx_wer.py --model models/conformer_ctc_base --corpus data/default

Policies are applied without fine-tuning; both runs use the model's default decoder.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from asrcompress.compression import Policy, compress_model
from asrcompress.data import load_manifest
from asrcompress.export import OnnxAcousticModel, export_onnx
from asrcompress.models import features_of, load_model, read_config
from asrcompress.objectives import DecoderConfig, evaluate

POLICIES = [None, "examples/policies/int8.yaml", "examples/policies/int4.yaml",
            "examples/policies/structured25_lowrank50.yaml"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("models/conformer_ctc_base"))
    ap.add_argument("--corpus", type=Path, default=Path("data/default"))
    ap.add_argument("--out", type=Path, default=Path("docs/onnx_wer.json"))
    args = ap.parse_args()
    base = load_model(args.model)
    cfg = DecoderConfig.from_dict(read_config(args.model)["decoder"])
    utts = load_manifest(args.corpus / "test.jsonl")[0]
    rows = []
    for pol in POLICIES:
        model, states = base, {}
        if pol:
            model, states, _ = compress_model(base, Policy.load(pol))
        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(model, states, Path(tmp) / "m.onnx")["path"]
            t0 = time.perf_counter()
            w_torch = evaluate(model, args.model, utts, cfg, batch_seconds=0)["wer"]
            w_batched = evaluate(model, args.model, utts, cfg)["wer"]
            w_onnx = evaluate(OnnxAcousticModel(path, features_of(base)), args.model, utts, cfg)["wer"]
        rows.append({"policy": pol or "fp32 base", "wer_torch": round(w_torch, 5), "wer_onnx": round(w_onnx, 5),
                     "wer_torch_batched": round(w_batched, 5),
                     "diff_points": round(100 * (w_onnx - w_torch), 3), "seconds": round(time.perf_counter() - t0, 1)})
        print(json.dumps(rows[-1]), file=sys.stderr)
    doc = {"utterances": len(utts), "decoder": cfg.to_dict(), "command": "python " + " ".join(sys.argv), "rows": rows}
    args.out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
