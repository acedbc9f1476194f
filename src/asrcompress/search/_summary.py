"""The study's front: rows for `front`, test re-scoring, and the parent run's artifacts."""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path

import optuna
from optuna.trial import TrialState

from .._outputs import write_text
from ..tracking import Tracker
from ._pareto import hypervolume, reference_point
from ._study import open_storage


def load_study(storage_url: str, name: str) -> optuna.Study:
    from ..errors import UserError

    storage = open_storage(storage_url)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if name not in names:
        raise UserError(f"study {name!r} not found in {storage_url} (studies: {', '.join(names) or 'none'})")
    return optuna.load_study(study_name=name, storage=storage)


def test_scores_path(study: optuna.Study) -> Path:
    return Path(study.user_attrs.get("workdir", ".")) / "front_test.json"


def front_rows(study: optuna.Study) -> list[dict]:
    from ._settings import is_staged

    if is_staged(study):
        from ._staged_report import staged_rows

        return [r for r in staged_rows(study) if r["front"]]
    objectives = study.user_attrs["objectives"]
    tests = {}
    path = test_scores_path(study)
    if path.exists():
        tests = {int(k): v for k, v in json.loads(path.read_text()).items()}
    rows = []
    for t in sorted(study.best_trials, key=lambda t: t.values[0]):
        row = {"trial": t.number, "values": dict(zip(objectives, t.values)), "policy": t.user_attrs.get("policy"),
               "size_ratio": t.user_attrs.get("size_ratio"), "baseline": t.user_attrs.get("baseline")}
        if t.number in tests:
            row["test"] = tests[t.number]
        rows.append(row)
    return rows


def _figures(study: optuna.Study, base: dict, objectives: list[str]) -> tuple[str, str, str]:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    front = {t.number for t in study.best_trials}
    pairs = [(objectives[0], o) for o in objectives[1:]]
    fig = make_subplots(rows=1, cols=max(1, len(pairs)), subplot_titles=[f"{a} vs {b}" for a, b in pairs])
    for col, (a, b) in enumerate(pairs, 1):
        for on, color in ((False, "lightgray"), (True, "crimson")):
            pts = [t for t in done if (t.number in front) == on]
            fig.add_trace(go.Scatter(
                x=[t.values[objectives.index(b)] for t in pts], y=[t.values[objectives.index(a)] for t in pts],
                mode="markers", marker={"color": color, "size": 9 if on else 6},
                name="Pareto front" if on else "other trials", showlegend=col == 1,
                text=[f"trial {t.number}" for t in pts]), row=1, col=col)
        fig.add_trace(go.Scatter(x=[base[b]], y=[base[a]], mode="markers", marker={"symbol": "x", "size": 12},
                                 name="base model", showlegend=col == 1), row=1, col=col)
        fig.update_xaxes(title_text=b, row=1, col=col)
        fig.update_yaxes(title_text=a, row=1, col=col)
    divs = [fig.to_html(full_html=False, include_plotlyjs=False)]
    if len(objectives) >= 3:
        f3 = go.Figure(go.Scatter3d(
            x=[t.values[1] for t in done], y=[t.values[2] for t in done], z=[t.values[0] for t in done],
            mode="markers", marker={"color": ["crimson" if t.number in front else "gray" for t in done], "size": 5},
            text=[f"trial {t.number}" for t in done]))
        f3.update_layout(scene={"xaxis_title": objectives[1], "yaxis_title": objectives[2], "zaxis_title": objectives[0]})
        divs.append(f3.to_html(full_html=False, include_plotlyjs=False))
    ref = reference_point(base, objectives)
    hv, xs, pts = [], [], []
    for t in sorted(done, key=lambda t: t.number):
        pts.append(list(t.values))
        xs.append(t.number)
        hv.append(hypervolume(pts, ref))
    fh = go.Figure(go.Scatter(x=xs, y=hv, mode="lines+markers"))
    fh.update_layout(title=f"hypervolume, reference point {dict(zip(objectives, [round(r, 4) for r in ref]))}",
                     xaxis_title="trial", yaxis_title="hypervolume")
    divs.append(fh.to_html(full_html=False, include_plotlyjs=False))
    return _page(study.study_name, divs), (hv[-1] if hv else 0.0)


def _page(title: str, divs: list[str]) -> str:
    """One self-contained page: plotly.js is embedded (about 4.6 MB) so the artifact opens
    offline and from the MLflow UI with no request to a CDN."""
    from plotly.offline import get_plotlyjs

    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Pareto front: {html.escape(title)}</title>"
            f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
            f"<h2>Pareto front of study {html.escape(title)}</h2>{''.join(divs)}</body></html>")


def rescore_front_on_test(study: optuna.Study) -> dict[int, dict]:
    """Test WER of each front model with its default decoder (the search used dev)."""
    from ..data import load_manifest
    from ..models import load_model, read_config
    from ..objectives import DecoderConfig, evaluate

    path = test_scores_path(study)
    scores = {int(k): v for k, v in json.loads(path.read_text()).items()} if path.exists() else {}
    from ._settings import study_settings

    utts, _ = load_manifest(Path(study_settings(study).corpus) / "test.jsonl")
    for t in study.best_trials:
        if t.number in scores or "model_dir" not in t.user_attrs:
            continue
        mdir = Path(t.user_attrs["model_dir"])
        cfg = DecoderConfig.from_dict(read_config(mdir).get("decoder") or {"kind": "greedy"})
        r = evaluate(load_model(mdir), mdir, utts, cfg, batch_seconds=0)
        scores[t.number] = {"test_wer": r["wer"], "test_cer": r["cer"], "decoder": cfg.kind}
        write_text(path, json.dumps(scores, indent=1))
    return scores


def summarize_study(cfg: dict) -> dict:
    study = load_study(cfg["storage"], cfg["study"])
    objectives = study.user_attrs["objectives"]
    base = study.user_attrs["base"]
    tests = rescore_front_on_test(study) if cfg.get("rescore_test", True) else {}
    tracker = Tracker(cfg["tracking_uri"], cfg["study"])
    runs = tracker.trial_runs()
    for number, s in tests.items():
        if number in runs:
            tracker.log_metric(runs[number], "test_wer", s["test_wer"])
    tracker.mark_pareto({t.number for t in study.best_trials})
    parent = study.user_attrs["mlflow_parent"]
    pareto_html, hv = _figures(study, base, objectives)
    tracker.log_text(parent, pareto_html, "pareto_front.html")
    rows = front_rows(study)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["trial", *objectives, "size_ratio", "test_wer", "baseline"])
    for r in rows:
        w.writerow([r["trial"], *[r["values"][o] for o in objectives], r.get("size_ratio"),
                    r.get("test", {}).get("test_wer"), r.get("baseline") or ""])
    tracker.log_text(parent, buf.getvalue(), "front.csv")
    trials = study.get_trials(deepcopy=False)
    counts = {s.name: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED,
                                                                  TrialState.FAIL, TrialState.RUNNING)}
    tracker.log_metric(parent, "hypervolume", hv)
    tracker.log_metric(parent, "front_size", len(rows))
    tracker.finish_run(parent)
    return {"study": cfg["study"], "trials": counts, "front": rows, "hypervolume": hv, "base": base,
            "saved_steps": sum(t.user_attrs.get("saved_steps", 0) for t in trials)}
