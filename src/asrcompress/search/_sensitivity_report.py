"""The sensitivity scan's report: a heat map of layers x options, and its MLflow run."""

from __future__ import annotations

import math


def heatmap(result: dict):
    """A plotly heat map, units (rows, model order) x options (columns), colour log10 KL."""
    import plotly.graph_objects as go

    units = list(dict.fromkeys(r["unit"] for r in result["rows"]))
    labels = list(dict.fromkeys(r["option"] for r in result["rows"]))
    z = [[None] * len(labels) for _ in units]
    text = [[""] * len(labels) for _ in units]
    for r in result["rows"]:
        i, j = units.index(r["unit"]), labels.index(r["option"])
        if r["kl"] is not None:
            z[i][j] = math.log10(max(r["kl"], 1e-9))
            text[i][j] = f"KL {r['kl']:.3g}, dWER {r['dwer']:+.3f}"
        else:
            text[i][j] = f"skipped: {r['skipped']}"
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=units, text=text, hoverinfo="x+y+text",
                               colorbar={"title": "log10 KL"}))
    fig.update_layout(title=f"Sensitivity: KL(base || compressed) per frame, {result['utterances']} dev "
                            f"utterances (base greedy WER {result['base_wer']:.3f})",
                      yaxis={"autorange": "reversed"}, height=max(400, 18 * len(units)))
    return fig


def log_scan(result: dict, uri: str, study: str) -> str:
    """The scan as an MLflow run of the study's experiment: the rows as a table, the heat map,
    and the base WER and cost as metrics. Returns the run id."""
    from ..tracking import Tracker

    tracker = Tracker(uri, study)
    run = tracker.create_run("sensitivity", {"asrcompress_role": "sensitivity", "study": study,
                                             "model_sha256": result["model_sha256"]})
    cols = ("unit", "option", "method", "kl", "dwer", "wer", "skipped", "seconds", "dbytes",
            *(f"dms@{p}" for p in result.get("base_ms", {})))
    tracker.client.log_table(run, data={c: [r.get(c) for r in result["rows"]] for c in cols},
                             artifact_file="sensitivity.json")
    tracker.client.log_figure(run, heatmap(result), "sensitivity_heatmap.html")
    for key in ("base_wer", "utterances", "seconds", "option_seconds", "cached"):
        tracker.log_metric(run, key, result[key])
    tracker.log_metric(run, "options", len(result["rows"]))
    add = result.get("additivity", {})
    for key in ("spearman", "median_measured_over_predicted", "spearman_wer"):
        if add.get(key) is not None:
            tracker.log_metric(run, f"additivity_{key}", add[key])
    for field, err in add.get("cost_relative_error", {}).items():
        tracker.log_metric(run, f"additivity_{field}_max_relative_error", err["max"])
    tracker.finish_run(run)
    return run
