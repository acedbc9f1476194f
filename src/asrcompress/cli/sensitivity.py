"""The sensitivity scan command: the damage of each option of a space, one layer at a time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ._app import app, err, out


@app.command()
def sensitivity(
    space: Annotated[Path, typer.Option(help="Search space YAML, or the name of a shipped one")],
    model: Annotated[Optional[Path], typer.Option(help="Model folder (default: the shipped base model)")] = None,
    corpus: Annotated[Path, typer.Option(help="Corpus with dev.jsonl (and train.jsonl for calibration)")] = Path(
        "data/default"),
    utterances: Annotated[int, typer.Option(help="Dev utterances every option is scored on")] = 16,
    kd_utterances: Annotated[int, typer.Option(help="Training utterances for options that calibrate "
                                                     "(GPTQ, activation fits, the taylor criterion)")] = 32,
    cache: Annotated[Path, typer.Option(help="Folder of cached scans, by model and dev-audio hash")] = Path(
        "mlruns/sensitivity"),
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow URI (default: $MLFLOW_TRACKING_URI or "
                                                            "sqlite:///mlruns/mlflow.db)")] = None,
    study: Annotated[Optional[str], typer.Option(help="MLflow experiment asrcompress/STUDY to log to "
                                                      "(default: the space's name)")] = None,
    check: Annotated[int, typer.Option(help="Random combinations of options that test the additive damage model "
                                            "(0: none)")] = 30,
    profiles: Annotated[Optional[Path], typer.Option(help="Folder of hardware profiles for the space's "
                                                          "latency@PROFILE objectives (default: the shipped ones)")] = None,
    latency: Annotated[bool, typer.Option(help="Price each option in predicted ms per profile (one ONNX export "
                                               "per layer shape and option)")] = True,
    mlflow: Annotated[bool, typer.Option(help="Log the table and heat map to MLflow")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scan as JSON")] = False,
) -> None:
    """Measure each option the space allows on its own (KL to the base per frame, greedy dWER),
    all other layers uncompressed; cached, so a re-run or a stopped scan costs only what is new."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .._shipped import base_model
    from ..search import run_sensitivity
    from ..tracking import tracking_uri as resolve_uri

    bar = Progress(TextColumn("scan"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.description}"), console=err, transient=True)
    task = bar.add_task("", total=None)

    def progress(done: int, total: int, row: dict) -> None:
        if done == 1:  # started on the first row, so bad input prints its error line alone
            bar.start()
        bar.update(task, completed=done, total=total, description=f"{row['unit']} {row['option']}")

    try:
        result = run_sensitivity(model or base_model(), corpus, space, utterances, kd_utterances, cache,
                                 resolve_uri(tracking_uri) if mlflow else None, study, progress, check,
                                 profiles, latency)
    finally:
        bar.stop()
    if as_json:
        print(json.dumps(result))
        return
    _print_scan(result)


def _print_scan(result: dict) -> None:
    """One row per option: its spread over the layers it was tried on and the layer it hurts
    most (the full layers x options matrix is the JSON and the MLflow heat map)."""
    import statistics

    from rich.table import Table

    by_option: dict[str, list[dict]] = {}
    for r in result["rows"]:
        by_option.setdefault(r["option"], []).append(r)
    profiles = list(result.get("base_ms", {}))
    table = Table("option", "layers", "median KL", "max KL", "max dWER", "saves (KB)",
                  *(f"ms@{p}" for p in profiles), "most sensitive layer",
                  title="Each option alone: KL(base || compressed) per frame (nats); bytes saved and predicted "
                        "ms change, summed over its layers")
    for label, rows in by_option.items():
        done = [r for r in rows if r["kl"] is not None]
        if not done:
            table.add_row(label, str(len(rows)), "-", "-", "-", "-", *("-" for _ in profiles),
                          f"skipped: {rows[0]['skipped']}")
            continue
        worst = max(done, key=lambda r: r["kl"])
        saved = -sum(r.get("dbytes", 0.0) for r in done) / 1024
        ms = [f"{sum(r[f'dms@{p}'] for r in done):+.1f}" if all(f"dms@{p}" in r for r in done) else "-"
              for p in profiles]
        table.add_row(label, str(len(rows)), f"{statistics.median(r['kl'] for r in done):.3g}", f"{worst['kl']:.3g}",
                      f"{max(r['dwer'] for r in done):+.3f}", f"{saved:,.0f}", *ms, worst["unit"])
    out.print(table)
    skipped = [r for r in result["rows"] if r["kl"] is None]
    for r in skipped[:5]:
        out.print(f"skipped: {r['unit']} {r['option']}: {r['skipped']}")
    add = result["additivity"]
    if add.get("draws"):
        def rho(v: float | None) -> str:
            return "undefined (constant)" if v is None else f"{v:.3f}"

        out.print(f"additive damage model on {add['draws']} random combinations of {min(add['options_per_draw'])}-"
                  f"{max(add['options_per_draw'])} options: Spearman rho {rho(add['spearman'])}, measured KL / "
                  f"summed KL median {add['median_measured_over_predicted']:.2f}; rho with their greedy WER "
                  f"{rho(add['spearman_wer'])}")
        for field, e in add.get("cost_relative_error", {}).items():
            out.print(f"  summed {field} vs the combination's own: relative error median {e['median']:.2%}, "
                      f"max {e['max']:.2%}")
    if profiles:
        out.print("base: " + ", ".join(f"{result['base_ms'][p]:.1f} ms@{p}" for p in profiles)
                  + f", {result['base_bytes'] / 1e6:.2f} MB; {result['exports']} ONNX exports priced the options")
    out.print(f"{len(result['rows'])} options on {result['utterances']} dev utterances (base greedy WER "
              f"{result['base_wer']:.3f}), {len(skipped)} skipped, {result['cached']} read from {result['cache']}; "
              f"{result['seconds']} s" + (f"; MLflow run {result['run_id']}" if result.get("run_id") else ""))
