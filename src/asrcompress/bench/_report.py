"""Score every arm's points the same way, then write the table, figure, docs and MLflow runs.

Objectives are relative to the base model in the same runtime, so ONNX and PyTorch points share
one space: WER / base WER, latency / base latency (1 / speed-up), stored bytes / fp32 bytes
(1 / size ratio). Hypervolume uses the fixed reference point (2, 1.1, 1.1) there: twice the
base WER, 10% slower and 10% bigger than the base.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from .._outputs import output_file
from ..data import load_manifest
from ..export import OnnxAcousticModel
from ..hardware import measure_latency
from ..models import features_of, torch_latency_ms
from ..objectives import DecoderConfig, evaluate
from ..search import hypervolume
from ._peers import onnx_stored_bytes

REFERENCE = [2.0, 1.1, 1.1]
WER_TOLERANCE = 1.05  # targets and "best" figures: test WER at most 5% relative above the base
TARGETS = {"size_ratio": 12.0, "speedup": 3.0, "hv_vs_random": 1.15}
SECONDS = 8.0
SCORING_THREADS = 2  # WER scoring is not timed: use the machine


def _test_wer(model, model_dir: Path, utts) -> float:
    return evaluate(model, model_dir, utts, DecoderConfig(kind="greedy"), workers=1, batch_seconds=0)["wer"]


def score(o, arms, base, base_onnx: Path, log) -> dict:
    """Fill every point's `extra` with test_wer, wer_rel, speedup, latency_ms; returns the base figures."""
    utts = load_manifest(Path(o.corpus) / "test.jsonl")[0]
    utts = utts[: o.test_utterances] if o.test_utterances else utts
    spec = features_of(base)
    base_wer = _test_wer(OnnxAcousticModel(base_onnx, spec, SCORING_THREADS), o.model, utts)
    onnx_points = [p for a in arms for p in a.points if p.onnx]
    for i, p in enumerate(onnx_points):
        p.extra["test_wer"] = _test_wer(OnnxAcousticModel(p.onnx, spec, SCORING_THREADS), o.model, utts)
        log(f"  test WER {i + 1}/{len(onnx_points)} {p.arm} {p.label}: {p.extra['test_wer']:.4f}")
    lat = measure_latency([base_onnx, *[p.onnx for p in onnx_points]], 1, [SECONDS], repeats=5 if o.quick else 10)
    base_ms = lat[0][SECONDS]
    base_stored = onnx_stored_bytes(base_onnx)
    for p, t in zip(onnx_points, lat[1:]):
        p.extra["onnx_size_ratio"] = base_stored / onnx_stored_bytes(p.onnx)  # what the .onnx file holds
        p.extra["latency_ms"] = t[SECONDS]
        p.extra["speedup"] = base_ms / t[SECONDS]
        p.extra["wer_rel"] = p.extra["test_wer"] / base_wer
    torch_wer = None
    for p in (p for a in arms for p in a.points if not p.onnx):
        if "model" in p.extra:  # torch.ao: scored here against PyTorch fp32, side by side
            model = p.extra.pop("model")
            torch_wer = torch_wer or _test_wer(base, o.model, utts)
            p.extra["test_wer"] = _test_wer(model, o.model, utts)
            t_base, t_q = torch_latency_ms([base, model], SECONDS)
            p.extra.update(latency_ms=t_q, speedup=t_base / t_q, wer_rel=p.extra["test_wer"] / torch_wer,
                           base_latency_ms=t_base, base_test_wer=torch_wer)
        # peers' own PyTorch points arrive scored (test_wer, wer_rel, speedup) by their script
    return {"test_wer": base_wer, "latency_ms": base_ms, "torch_test_wer": torch_wer, "utterances": len(utts)}


def _objectives(p) -> list[float]:
    return [p.extra["wer_rel"], 1 / p.extra["speedup"], 1 / p.size_ratio]


def _dominates(a: list[float], b: list[float]) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def summarize(arms) -> dict:
    rows = {}
    for a in arms:
        pts = [p for p in a.points if "wer_rel" in p.extra]
        ok = [p for p in pts if p.extra["wer_rel"] <= WER_TOLERANCE]
        rows[a.name] = {
            "kind": a.kind,
            "hypervolume": hypervolume([_objectives(p) for p in pts], REFERENCE),
            "best_size_ratio": max((p.size_ratio for p in ok), default=None),
            "best_speedup": max((p.extra["speedup"] for p in ok), default=None),
            "best_onnx_size_ratio": max((p.extra["onnx_size_ratio"] for p in ok if "onnx_size_ratio" in p.extra),
                                        default=None),
            "cpu_minutes": round(a.cpu_seconds / 60, 2),
            "points": len(pts),
            "points_within_5pct": len(ok),
            "note": a.note,
            "error": a.error,
        }
    search = [_objectives(p) for a in arms if a.name == "search" for p in a.points if "wer_rel" in p.extra]
    undominated = []
    for a in arms:
        if a.kind in ("uniform", "peer"):
            for p in a.points:
                if "wer_rel" in p.extra and not any(_dominates(s, _objectives(p)) for s in search):
                    undominated.append(f"{a.name}:{p.label}")
    return {"arms": rows, "not_dominated_by_search": undominated}


def _figure(arms, base: dict, stem: Path) -> list[str]:
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=["test WER vs host latency", "test WER vs stored size"])
    for k, a in enumerate(a for a in arms if any("wer_rel" in p.extra for p in a.points)):
        pts = [p for p in a.points if "wer_rel" in p.extra]
        color = qualitative.Plotly[k % len(qualitative.Plotly)]
        for col, x_of in ((1, lambda p: 1 / p.extra["speedup"]), (2, lambda p: 1 / p.size_ratio)):
            xs = [x_of(p) for p in pts]
            ys = [100 * p.extra["wer_rel"] * base["test_wer"] for p in pts]
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", marker={"color": color, "size": 8},
                                     name=a.name, legendgroup=a.name, showlegend=col == 1,
                                     text=[p.label for p in pts]), row=1, col=col)
            front, best = [], float("inf")  # the arm's 2-D front in this projection
            for x, y in sorted(zip(xs, ys)):
                if y < best:
                    front.append((x, y))
                    best = y
            if len(front) > 1:
                fig.add_trace(go.Scatter(x=[f[0] for f in front], y=[f[1] for f in front], mode="lines",
                                         line={"color": color, "shape": "hv"}, legendgroup=a.name,
                                         showlegend=False), row=1, col=col)
    for col in (1, 2):
        fig.add_trace(go.Scatter(x=[1.0], y=[100 * base["test_wer"]], mode="markers", name="fp32 base",
                                 marker={"symbol": "x", "size": 12, "color": "black"}, showlegend=col == 1),
                      row=1, col=col)
        fig.add_hline(y=100 * base["test_wer"] * WER_TOLERANCE, line_dash="dot", row=1, col=col)
    fig.update_xaxes(title_text="latency / fp32 latency (8 s utterance, host)", type="log", row=1, col=1)
    fig.update_xaxes(title_text="stored bytes / fp32 bytes", type="log", row=1, col=2)
    fig.update_yaxes(title_text="test WER (%)", row=1, col=1)
    fig.update_layout(width=1300, height=560, title="asrcompress bench: every arm's points and 2-D fronts "
                      "(dotted: base WER + 5% relative)")
    written = []
    html = stem.with_suffix(".html")
    with output_file(html, {}) as tmp:
        fig.write_html(str(tmp), include_plotlyjs="cdn")
    written.append(str(html))
    try:
        os.environ.setdefault("BROWSER_PATH", "/usr/bin/chromium")
        with output_file(stem.with_suffix(".png"), {}) as tmp:
            fig.write_image(str(tmp), scale=1)
        written.append(str(stem.with_suffix(".png")))
    except Exception as e:  # kaleido needs a Chromium; the HTML stays the primary figure
        written.append(f"PNG not written: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    return written


def _commit() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> str:
    import onnxruntime
    import torch

    cpu = "unknown CPU"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, Python "
            f"{platform.python_version()}, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}")


def report(o, arms, base_model, base_onnx: Path, stamp: str, log, t0: float) -> dict:
    import time

    from ._doc import log_mlflow, write_markdown

    base = score(o, arms, base_model, base_onnx, log)
    summary = summarize(arms)
    for row in summary["arms"].values():
        row["wer_base"] = base["test_wer"]
    o.out.parent.mkdir(parents=True, exist_ok=True)
    figures = _figure(arms, base, o.out)
    points = [{"arm": p.arm, "label": p.label, "size_ratio": p.size_ratio, "size_basis": p.size_basis,
               **{k: v for k, v in p.extra.items() if k in ("test_wer", "wer_rel", "speedup", "latency_ms",
                                                             "onnx_size_ratio", "dev", "dev_wer", "baseline")}}
              for a in arms for p in a.points]
    s = summary["arms"]["search"]
    rnd = summary["arms"].get("random", {}).get("hypervolume") or 0.0
    hv_ratio = summary["arms"]["search"]["hypervolume"] / rnd if rnd else None
    targets = {
        "front_dominates_uniform_and_peers": not summary["not_dominated_by_search"],
        "hv_vs_random": hv_ratio,  # None when random search has no volume at all
        "hv_vs_random_met": (hv_ratio >= TARGETS["hv_vs_random"]) if hv_ratio is not None else s["hypervolume"] > 0,
        "size_ratio_met": (s["best_size_ratio"] or 0) >= TARGETS["size_ratio"],
        "speedup_met": (s["best_speedup"] or 0) >= TARGETS["speedup"],
        "within_cpu_hour": s["cpu_minutes"] <= 60,
    }
    doc = {"command": o.command, "machine": machine(), "stamp": stamp, "commit": _commit(), "base": base,
           "budget_cpu_minutes_per_search_arm": o.budget_minutes, "workers": o.workers,
           "space": str(o.space), "corpus": str(o.corpus), "reference_point": REFERENCE,
           "wer_tolerance": WER_TOLERANCE, "targets": targets, "figures": figures, **summary, "all_points": points}
    doc["total_cpu_minutes"] = round(sum(r["cpu_minutes"] for r in summary["arms"].values()), 1)
    import resource  # the whole run: this process and every child it waited for (workers, peers)

    ru = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    doc["run_cpu_minutes"] = round(sum(r.ru_utime + r.ru_stime for r in ru) / 60, 1)
    doc["wall_minutes"] = round((time.perf_counter() - t0) / 60, 1)
    write_markdown(o.out.with_suffix(".md"), doc)
    doc["mlflow_run"] = log_mlflow(o.tracking_uri, doc, figures, stamp)
    return doc
