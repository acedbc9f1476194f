"""The benchmark command: search vs random vs uniform policies vs peer tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UserError
from ._app import app, command_line, err


@app.command()
def bench(
    budget_minutes: Annotated[float, typer.Option(help="CPU-minutes for each search arm (search, random) and seed")] = 20.0,
    seeds: Annotated[Optional[int], typer.Option(help="Seeds of each search arm (default 3; --quick: 1)")] = None,
    out: Annotated[Path, typer.Option(help="Stem of the .md/.json/.html/.png outputs")] = Path("docs/benchmarks"),
    quick: Annotated[bool, typer.Option("--quick", help="A small run (small corpus, short budgets): <= 20 min")] = False,
    space: Annotated[Path, typer.Option(help="Search space of the search and random arms (a file, or a shipped "
                                             "space's name)")] = Path("quick"),
    model: Annotated[Optional[Path], typer.Option(help="Base model folder (default: the shipped one)")] = None,
    corpus: Annotated[Optional[Path], typer.Option(help="Corpus (default: the built-in benchmark, synthesised "
                                                        "if missing; --quick: a small one)")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes of each search arm")] = 2,
    peers: Annotated[bool, typer.Option(help="Run the peers that live in .venv-peers (INC, NNCF, AIMET, Olive; "
                                             "scripts/setup_peers.sh); ONNX Runtime's and torch.ao always run")] = True,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow URI")] = None,
    workdir: Annotated[Path, typer.Option(help="Models, logs and journals of the run")] = Path("mlruns/bench"),
    test_utterances: Annotated[Optional[int], typer.Option(help="Size of the bench's own test set, synthesised "
                                                                "from its own seed (default 2000; --quick: 200)")] = None,
) -> None:
    """Search vs random search vs uniform policies vs peer tools, scored side by side in one run.

    Re-running the same command resumes it: finished arms, seeds, peers and scored points are kept."""
    from .._outputs import output_folder
    from .._shipped import base_model, resolve
    from ..bench import BenchOptions, run_bench
    from ..tracking import tracking_uri as resolve_uri

    space, model = resolve("space", space), model or base_model()

    if budget_minutes <= 0:
        raise UserError(f"--budget-minutes {budget_minutes} must be positive")
    if workers < 1:
        raise UserError(f"--workers {workers} must be at least 1")
    seeds = seeds if seeds is not None else (1 if quick else 3)
    if seeds < 1:
        raise UserError(f"--seeds {seeds} must be at least 1")
    test_utterances = test_utterances or (200 if quick else 2000)
    if test_utterances < 20:
        raise UserError(f"--test-utterances {test_utterances} must be at least 20")
    if corpus is None:
        corpus = Path("data/bench-quick") if quick else Path("data/default")
        if not (corpus / "test.jsonl").is_file():
            from ..data import build_corpus

            err.print(f"bench: synthesising the built-in benchmark corpus into {corpus}")
            with output_folder(corpus, {}, command=command_line(), kind="corpus", resume=True) as stage:
                build_corpus(stage, seed=2026 if quick else 0, size="small" if quick else "default")
    for name in ("train", "dev", "test"):
        if not (corpus / f"{name}.jsonl").is_file():
            raise UserError(f"{corpus / (name + '.jsonl')}: not found; build one with `asrcompress corpus`")
    if quick and out == Path("docs/benchmarks"):
        out = workdir / "quick" / "benchmarks"
    opts = BenchOptions(model=model, corpus=corpus, space=space, budget_minutes=min(budget_minutes, 3.0) if quick
                        else budget_minutes, workers=workers, out=out, workdir=workdir / ("quick" if quick else "full"),
                        tracking_uri=resolve_uri(tracking_uri), peers=peers, quick=quick, seeds=seeds,
                        dev_utterances=40 if quick else 100, kd_utterances=300 if quick else 2000,
                        test_utterances=test_utterances, command=command_line())
    doc = run_bench(opts, log=err.print)

    def fig(v) -> str:
        v = v["median"] if isinstance(v, dict) else v
        return "-" if v is None else f"{v:.2f}x"

    for name, r in doc["arms"].items():
        d = r["deployed"]
        if r.get("pytorch"):  # PyTorch runtime: against PyTorch fp32, no ONNX hypervolume
            for q in r["pytorch"]:
                print(f"{name:24s} PyTorch: WER x{q['wer_ratio_deployed']:.3f} of PyTorch fp32, speed-up "
                      f"{fig(q['speedup'])}")
            continue
        hv = d["hypervolume"]["median"] if isinstance(d["hypervolume"], dict) else d["hypervolume"]
        print(f"{name:24s} HV {hv:.4f}  size {fig(d['best_size_ratio']):>7s}  speed-up {fig(d['best_speedup']):>6s}  "
              f"{r['cpu_minutes']:6.1f} CPU-min" + (f"  error: {r['error']}" if r["error"] else ""))
    print(f"targets (deployed decoder): {json.dumps(doc['targets']['deployed'])}")
    print(f"wrote {out.with_suffix('.md')}, {out.with_suffix('.json')}; MLflow run {doc['mlflow_run']}")
