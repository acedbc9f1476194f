"""The Python API in one script: compress a model, run a 3-trial search, export the knee.

    .venv/bin/python examples/api_quickstart.py --data data/demo      # after `make demo` made the corpus

Everything lands under --workdir (default runs/api_quickstart): the int8 ONNX file, the study's
journal, its MLflow store, its trials and the knee's deployment bundle. Re-running resumes the
study (its 3 trials are kept) and rewrites the outputs. See docs/api.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import asrcompress as ac


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped base model)")
    p.add_argument("--data", type=Path, default=Path("data/demo"), help="corpus with train/dev/test.jsonl")
    p.add_argument("--space", default="quick", help="space YAML or shipped name")
    p.add_argument("--workdir", type=Path, default=Path("runs/api_quickstart"))
    p.add_argument("--dev-utterances", type=int, default=30)
    p.add_argument("--kd-utterances", type=int, default=200)
    args = p.parse_args(argv)
    work = args.workdir.resolve()

    # 1. Compress with a shipped policy and write its ONNX file (int8 MatMul kernels).
    from asrcompress._shipped import base_model

    model_dir = args.model or base_model()
    model = ac.load_model(model_dir)
    small, report = ac.compress(model, "int8")
    onnx = ac.export((small, report), out=work / "int8.onnx")
    print(f"int8: {report['total_bytes']:,} bytes stored, {report['ratio']:.2f}x smaller than fp32; "
          f"ONNX {onnx['path']}")

    # 2. A 3-trial search (the uniform baselines the space can express come first).
    study = ac.search(args.space, model=model_dir, data=args.data, trials=3, study="api_quickstart",
                      storage=f"journal:{work / 'study.journal'}", tracking_uri=f"sqlite:///{work / 'mlflow.db'}",
                      dev_utterances=args.dev_utterances, kd_utterances=args.kd_utterances)
    rows = ac.front(study)
    for row in rows:
        print(f"trial {row['trial']}: " + ", ".join(f"{k} {v:.4g}" for k, v in row["values"].items()))

    # 3. The knee of the front as a deployment bundle, re-measured on its ONNX file.
    card = ac.export(study, pick="knee", out=work / "knee")
    print(f"knee: trial {card['trial']}, dev WER on ONNX {card['measured_on_onnx']['wer']:.4f}; bundle {work / 'knee'}")
    return {"ratio": report["ratio"], "front": rows, "card": card}


if __name__ == "__main__":
    main()
