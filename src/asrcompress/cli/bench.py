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
    budget_minutes: Annotated[Optional[float], typer.Option(
        help="one-stage: CPU-minutes for each search arm (search, random) and seed (default 20; --quick: 3)")] = None,
    strategy: Annotated[str, typer.Option(
        help="The search arms' strategy: staged (default; NSGA-II vs random proposals, same stages) or one-stage "
             "(TPE vs random trials)")] = "staged",
    proposals: Annotated[Optional[int], typer.Option(help="staged: surrogate policies per arm (default 2000; "
                                                           "--quick: 300)")] = None,
    candidates: Annotated[Optional[int], typer.Option(help="staged: candidates per arm (default 12; --quick: 4)")
                          ] = None,
    rungs: Annotated[Optional[str], typer.Option(help="staged: distillation steps by each rung's end (default "
                                                      "100,300,900; --quick: 20,60)")] = None,
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

    if strategy not in ("staged", "one-stage"):
        raise UserError(f"--strategy {strategy!r} is not one of staged, one-stage")
    staged = _staged_options(strategy, quick, budget_minutes, proposals, candidates, rungs)
    budget_minutes = 20.0 if budget_minutes is None else budget_minutes
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
                        test_utterances=test_utterances, command=command_line(), strategy=strategy, staged=staged)
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
        print(f"{name:24s} HV {hv:.4f}  size {fig(d['best_size_ratio']):>7s} (file {fig(d.get('best_file_size_ratio'))})"
              f"  speed-up {fig(d['best_speedup']):>6s}  "
              f"{r['cpu_minutes']:6.1f} CPU-min" + (f"  error: {r['error']}" if r["error"] else ""))
    print(f"targets (deployed decoder): {json.dumps(doc['targets']['deployed'])}")
    print(f"wrote {out.with_suffix('.md')}, {out.with_suffix('.json')}; MLflow run {doc['mlflow_run']}")


QUICK_STAGED = {"proposals": 300, "candidates": 4, "rungs": (20, 60)}


def _staged_options(strategy: str, quick: bool, budget_minutes: Optional[float], proposals: Optional[int],
                    candidates: Optional[int], rungs: Optional[str]) -> dict:
    """The staged arms' options (StagedOptions fields, checked), or {} for one-stage; each flag
    refused by the strategy it does not apply to."""
    from ..search import StagedOptions

    named = {"--proposals": proposals, "--candidates": candidates, "--rungs": rungs}
    if strategy == "one-stage":
        for flag, value in named.items():
            if value is not None:
                raise UserError(f"{flag} applies to --strategy staged only")
        return {}
    if budget_minutes is not None:
        raise UserError("--budget-minutes applies to --strategy one-stage; the staged arms' cost is set by "
                        "--proposals, --candidates and --rungs (and measured)")
    from .search import _staged_options as named_options

    opts = (dict(QUICK_STAGED) if quick else {}) | named_options(proposals, candidates, rungs, None)
    doc = StagedOptions(**opts).check().to_dict()
    del doc["sampler"]  # each arm names its own
    return doc
