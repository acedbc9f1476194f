"""The propose command: the search's scan, surrogate and candidate stages (docs/search.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UserError
from ._app import app, err, out, torch_device


@app.command()
def propose(
    space: Annotated[Path, typer.Option(help="Search space YAML, or the name of a shipped one")],
    out_dir: Annotated[Path, typer.Option("--out", help="New folder for candidates.json and one folder per "
                                                        "candidate (policy.yaml, model.onnx)")],
    model: Annotated[Optional[Path], typer.Option(help="Model folder (default: the shipped base model)")] = None,
    corpus: Annotated[Path, typer.Option(help="Corpus with dev.jsonl (and train.jsonl for calibration)")] = Path(
        "data/default"),
    utterances: Annotated[int, typer.Option(help="Dev utterances the sensitivity scan scores each option on")] = 16,
    kd_utterances: Annotated[int, typer.Option(help="Training utterances for options that calibrate")] = 32,
    cache: Annotated[Path, typer.Option(help="Folder of cached sensitivity scans")] = Path("mlruns/sensitivity"),
    trials: Annotated[int, typer.Option(help="Surrogate policies the NSGA-II study proposes (seeds included)")] = 2000,
    population: Annotated[int, typer.Option(help="NSGA-II population size")] = 50,
    candidates: Annotated[int, typer.Option(help="Most candidates picked across the size and latency budgets")] = 24,
    seed: Annotated[int, typer.Option(help="The surrogate study's seed")] = 0,
    sampler: Annotated[str, typer.Option(help="nsga2 (seeded with knapsack solutions) or random (for comparison)")
                       ] = "nsga2",
    dev_utterances: Annotated[int, typer.Option(help="Dev utterances each candidate is scored on in ONNX "
                                                     "(0: the whole dev split)")] = 0,
    score: Annotated[bool, typer.Option(help="Measure the candidates (off: the surrogate's picks only)")] = True,
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage the surrogate study is copied to "
                                                        "(default: a journal under mlruns/optuna)")] = None,
    study: Annotated[Optional[str], typer.Option(help="Name of the surrogate study "
                                                      "(default: SPACE-SAMPLER-seedSEED-OUT)")] = None,
    profiles: Annotated[Optional[Path], typer.Option(help="Folder of hardware profiles (default: the shipped ones)")
                        ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print candidates.json")] = False,
) -> None:
    """Propose candidates without training: the sensitivity scan (cached), a surrogate NSGA-II
    study over its sums, the least-damaging policy under each size and latency budget, each
    measured in ONNX without recovery beside what the surrogate predicted."""
    from .._shipped import base_model
    from ..search import run_propose

    progress, bar = _bar()
    try:
        doc = run_propose(model or base_model(), corpus, space, out_dir, utterances, kd_utterances, cache, trials,
                          population, candidates, seed, dev_utterances, score, storage, study, profiles, progress,
                          sampler)
    finally:
        bar.stop()
    if as_json:
        print(json.dumps(doc))
        return
    _print(doc, out_dir)


def _print(doc: dict, out_dir: Path) -> None:
    from rich.table import Table

    s, sc, p = doc["surrogate"], doc["scan"], doc["profile"]
    out.print(f"scan: {sc['options']} options ({sc['cached']} cached), {sc['seconds']} s; surrogate ({s['sampler']}): "
              f"{s['trials']} trials, {s['policies_scored']} distinct policies ({s['duplicates']} duplicates from the "
              f"cache; {s['units_priced']} stacked units priced, {s['units_cached']} cached), {s['seconds']} s, "
              f"hypervolume {s['hypervolume']:.4f} ({s['seeds']} seeds alone {s['seeds_hypervolume']:.4f}; "
              f"{s['front_from_seeds']} of the {s['front']} front points are seeds); study {s['study']!r} in "
              f"{s['storage']}")
    base_onnx, base_ms = doc["base_onnx_bytes"], doc["base_ms"][p]
    if not doc["candidates"]:
        table = Table("trial", "budgets", "pred KL", "pred .onnx MB", "pred stored MB", f"pred ms@{p}",
                      title="Picks (not measured)")
        for r in doc["picks"]:
            table.add_row(str(r["trial"]), " ".join(r["budgets"][:2]), f"{r['pred_kl']:.3g}",
                          f"{r['pred_onnx_bytes'] / 1e6:.2f}", f"{r['pred_bytes'] / 1e6:.2f}", f"{r[f'pred_ms@{p}']:.1f}")
        out.print(table)
        return

    def pair(r: dict, key: str, fmt: str, scale: float = 1.0) -> str:  # "predicted / measured"
        real = format(r[key] / scale, fmt)
        return real if r.get(f"pred_{key}") is None else f"{format(r[f'pred_{key}'] / scale, fmt)} / {real}"

    table = Table("name", "KL pred / real", "greedy WER", ".onnx MB pred / real", "x smaller", "stored MB",
                  f"ms@{p} pred / real", "x faster",
                  title=f"Candidates without recovery, in ONNX on {doc['dev_utterances']} dev utterances (base "
                        f"{base_onnx / 1e6:.2f} MB .onnx, {base_ms:.1f} ms@{p} predicted)")
    for r in doc["candidates"]:
        table.add_row(r["name"], pair(r, "kl", ".3g"), f"{r['wer']:.3f}", pair(r, "onnx_bytes", ".2f", 1e6),
                      f"{base_onnx / r['onnx_bytes']:.2f}", f"{r['bytes'] / 1e6:.2f}", pair(r, f"ms@{p}", ".1f"),
                      f"{base_ms / r[f'ms@{p}']:.2f}")
    out.print(table)
    e = doc["surrogate_error"]
    if e.get("candidates", 0) >= 2:
        def rho(v: float | None) -> str:
            return "undefined" if v is None else f"{v:.3f}"

        out.print(f"surrogate on its {e['candidates']} candidates: KL rank correlation {rho(e['spearman_kl'])}, "
                  f"with greedy WER {rho(e['spearman_wer'])}; bytes off by median {e['bytes']['median']:.1%} "
                  f"(max {e['bytes']['max']:.1%})" + (f"; .onnx bytes median {e['onnx_bytes']['median']:.1%} (max "
                                                  f"{e['onnx_bytes']['max']:.1%})" if "onnx_bytes" in e else "") + "".join(
                      f"; {k} median {v['median']:.1%} (max {v['max']:.1%})" for k, v in e.items() if k.startswith("ms@")))
    out.print(f"written: {out_dir / 'candidates.json'}")


@app.command()
def finalists(
    candidates: Annotated[Path, typer.Option(help="The --out folder of asrcompress propose (candidates.json)")],
    rungs: Annotated[str, typer.Option(help="Distillation steps done in all at the end of each rung, "
                                            "comma-separated and increasing")] = "100,300,900",
    kd_utterances: Annotated[int, typer.Option(help="Training utterances to distil on (0: the whole train split)")] = 2000,
    lr: Annotated[float, typer.Option(help="Peak learning rate (warm-up, then cosine to 0)")] = 2e-4,
    warmup: Annotated[float, typer.Option(help="Share of the steps the learning rate ramps up over (of each "
                                               "rung's, or with --schedule single of the last rung's)")] = 0.05,
    schedule: Annotated[str, typer.Option(help="per-rung: each rung its own warm-up + cosine to 0, so a rung "
                                               "is judged at a learning rate near 0; single: one warm-up + "
                                               "cosine over the last rung")] = "per-rung",
    batch_seconds: Annotated[float, typer.Option(help="Audio per distillation batch")] = 16.0,
    seed: Annotated[int, typer.Option(help="Seed of the training subset and batch order")] = 0,
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage of the finalist study "
                                                        "(default: a journal under mlruns/optuna)")] = None,
    study: Annotated[Optional[str], typer.Option(help="Name of the finalist study "
                                                      "(default: the surrogate study's + '-finalists')")] = None,
    profiles: Annotated[Optional[Path], typer.Option(help="Folder of hardware profiles (default: the shipped ones)")
                        ] = None,
    min_kl: Annotated[float, typer.Option(help="A candidate within this dev KL of the base before recovery keeps "
                                                "0 steps, like a quantization-only one")] = 0.05,
    timing: Annotated[bool, typer.Option("--time/--no-time", help="Time the base and the finalists interleaved "
                                                                  "on 1 thread after training (nothing else "
                                                                  "should run then)")] = True,
    repeats: Annotated[int, typer.Option(help="Timed runs per model and input length")] = 20,
    test_manifest: Annotated[Optional[Path], typer.Option(help="Test manifest the finalists are reported on "
                                                               "(default: the corpus's test.jsonl)")] = None,
    test_utterances: Annotated[int, typer.Option(help="Test utterances to report on (0: all)")] = 0,
    device: Annotated[str, typer.Option(help="Where distillation runs: cpu, cuda or auto (a GPU when there is "
                                              "one); scoring and timing stay on the CPU")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print finalists.json")] = False,
) -> None:
    """Recover propose's candidates by successive halving: quantization-only ones keep 0 steps,
    the others are distilled rung by rung (one run, each rung its own warm-up + cosine, teacher
    outputs cached) and only each size and latency budget's least-KL candidate goes on; the last
    rung's are measured in ONNX."""
    from ..search import run_finalists

    try:
        steps = tuple(int(s) for s in rungs.split(",") if s.strip())
    except ValueError:
        raise UserError(f"--rungs {rungs!r}: not comma-separated integers") from None
    progress, bar = _bar()
    try:
        doc = run_finalists(candidates, steps, kd_utterances, lr, warmup, batch_seconds, seed, storage, study,
                            profiles, progress, timing, repeats, test_manifest, test_utterances, min_kl,
                            device=torch_device("--device", device), schedule=schedule)
    finally:
        bar.stop()
    if as_json:
        print(json.dumps(doc))
        return
    from rich.table import Table

    p, base = doc["profile"], doc["base"]
    timed = "measured_ms@8s" in base
    table = Table("name", "steps kept/run", "dev KL per rung", "KL", "WER", "x smaller", f"x faster ({p}, pred.)",
                  *(["x faster (8 s / 2 s)", "peak MB"] if timed else []), "front",
                  title=f"Finalists on dev, in ONNX (base: greedy WER {base['wer']:.3f}, {base['onnx_bytes'] / 1e6:.2f} MB"
                        + (f", {base['measured_ms@8s']:.1f} ms at 8 s)" if timed else ")"))
    for r in sorted(doc["finalists"], key=lambda r: (not r["finalist"], r["name"])):
        by_rung = " ".join(f"{h['kl']:.2g}" for h in r.get("history", [])) or "-"
        if not r["finalist"]:
            table.add_row(r["name"] + " (pruned)", f"{r['best_steps']}/{r['steps']}", by_rung,
                          *["-"] * (6 if timed else 4), "")
            continue
        cells = [f"{r['kl']:.2g}", f"{r['wer']:.3f}", f"{base['onnx_bytes'] / r['onnx_bytes']:.2f}",
                 f"{base[f'ms@{p}'] / r[f'ms@{p}']:.2f}"]
        if timed:
            cells += [f"{base['measured_ms@8s'] / r['measured_ms@8s']:.2f}/{base['measured_ms@2s'] / r['measured_ms@2s']:.2f}",
                      f"{r['peak_mb']:.0f}"]
        mark = ("knee" if doc.get("knee") == r["name"] else "yes") if r.get("front") else ""
        table.add_row(r["name"], f"{r['best_steps']}/{r['steps']}", by_rung, *cells, mark)
    out.print(table)
    t = doc.get("test", {})
    if "utterances" in t:
        test = Table("name", "WER, deployed", "x base [95% CI]", "WER, greedy", "x base [95% CI]",
                     title=f"On test ({t['utterances']} utterances, {t['words']} words; selected on dev)")
        for r in [base, *(r for r in doc["finalists"] if r["finalist"])]:
            cells = []
            for k in ("deployed", "greedy"):
                v = r["test"][k]
                cells += [f"{v['wer']:.3f}", f"{v['ratio']:.2f} [{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}]"]
            test.add_row(r.get("name", "base"), *cells)
        out.print(test)
    elif t:
        out.print(f"test: skipped ({t['skipped']})")
    out.print(f"recovery {doc['seconds']} s; teacher outputs cached for {doc['teacher_batches_cached']} batches "
              f"({doc['teacher_cache_hits']} reuses); study {doc['study']!r} in {doc['storage']}")
    out.print(f"written: {Path(candidates) / 'finalists.json'}")


def _bar():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err, transient=True)
    task = bar.add_task("", total=None)
    started: list[bool] = []

    def progress(stage: str, done: int, total: int) -> None:
        if not started:  # started on the first update, so bad input prints its error line alone
            bar.start()
            started.append(True)
        bar.update(task, completed=done, total=total, description=stage)

    return progress, bar
