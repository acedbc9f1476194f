"""The benchmark's figures: every point scored (`_score`), each arm summarised per decoder, the
search arms over their seeds, the targets, and the JSON / Markdown / figure / MLflow outputs."""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path

import numpy as np

from ..models import features_of, torch_latency_ms
from ._peers import onnx_stored_bytes, torch_ao_dynamic
from ._score import LATENCY_SECONDS, TestSet, onnx_emissions, onnx_latencies, score_point, torch_emissions
from ._stats import REFERENCE, normalised_hypervolume, wer_ratio_ci

WER_TOLERANCE = 1.05  # "within 5%": test WER at most 5% relative above the base (point estimate)
TARGETS = {"size_ratio": 12.0, "speedup": 3.0, "hv_vs_random": 1.15}
DECODERS = ("deployed", "greedy")


def dominates(a, b) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def _npz_emissions(path: Path):
    def emit(_waves):
        with np.load(path) as z:
            return [z[k] for k in sorted(z.files, key=int)]
    return emit


def _save_emissions(path: Path, lps: list[np.ndarray]) -> Path:
    np.savez(path, **{str(i): lp for i, lp in enumerate(lps)})
    return path


def score_all(o, arms, base, base_onnx: Path, test_manifest: Path, state, log) -> dict:
    """Fill each point's `extra` with its WER ratios (and CIs) per decoder, .onnx size ratio, speed-ups."""
    test = TestSet.load(test_manifest, o.model)
    spec = features_of(base)
    base_err = score_point(state, base_onnx, onnx_emissions(base_onnx, spec), test, log)
    onnx_points = []
    for a in arms:
        for p in (p for p in a.points if p.runtime == "onnx"):
            try:
                p.extra["errors"] = score_point(state, Path(p.file), onnx_emissions(Path(p.file), spec), test, log)
                onnx_points.append(p)
            except Exception as e:  # a model ONNX Runtime cannot run is reported, not scored
                why = f"{p.label}: does not run ({type(e).__name__}: {str(e).splitlines()[0][:300]})"
                a.error = f"{a.error}; {why}" if a.error else why
                log(f"bench: {why}")
    # PyTorch peers against PyTorch fp32, each from its emissions on the same test set
    torch_base = state.folder / "pytorch_fp32.npz"
    if not torch_base.is_file():
        _save_emissions(torch_base, torch_emissions(base)(test.waves))
    torch_base_err = score_point(state, torch_base, _npz_emissions(torch_base), test, log)
    ao = None
    for p in (p for a in arms for p in a.points if p.runtime == "pytorch"):
        if p.file == "torch_ao":  # in-process: its emissions and latency here
            ao = ao or torch_ao_dynamic(base)
            npz = state.folder / "torch_ao.npz"
            if not npz.is_file():
                _save_emissions(npz, torch_emissions(ao)(test.waves))
            p.file = str(npz)
            t_base, t_q = torch_latency_ms([base, ao], LATENCY_SECONDS[0])
            p.extra.update(latency_ms=t_q, base_latency_ms=t_base)
        p.extra["errors"] = score_point(state, Path(p.file), _npz_emissions(Path(p.file)), test, log)
        p.extra["speedup"] = p.extra["base_latency_ms"] / p.extra["latency_ms"]
    for p in (p for a in arms for p in a.points if "errors" in p.extra):
        ref = torch_base_err if p.runtime == "pytorch" else base_err
        for d in DECODERS:
            ratio, ci = wer_ratio_ci(ref[d], p.extra["errors"][d], test.words)
            p.extra[f"wer_ratio_{d}"], p.extra[f"ci_{d}"] = ratio, ci
    log(f"bench: latency of {len(onnx_points) + 1} ONNX models, 1 thread, {len(LATENCY_SECONDS)} lengths, "
        "interleaved")
    lat, load = onnx_latencies([base_onnx, *[Path(p.file) for p in onnx_points]], log)
    base_stored = onnx_stored_bytes(base_onnx)
    for p, t in zip(onnx_points, lat[1:]):
        p.extra["onnx_size_ratio"] = base_stored / onnx_stored_bytes(Path(p.file))
        # the whole file too (names, attributes, shapes: ~0.2 MB here, a tenth of a 12x budget)
        p.extra["file_size_ratio"] = base_onnx.stat().st_size / Path(p.file).stat().st_size
        p.extra["latency_ms"] = {f"{s:g}s": t[s] for s in LATENCY_SECONDS}
        p.extra["speedup"] = lat[0][8.0] / t[8.0]
        p.extra["speedup_2s"] = lat[0][2.0] / t[2.0]
    words = sum(test.words)
    return {"utterances": len(test.refs), "words": words, "manifest": str(test_manifest),
            "wer": {d: sum(base_err[d]) / words for d in DECODERS},
            "pytorch_wer": {d: sum(torch_base_err[d]) / words for d in DECODERS},
            "latency_ms": {f"{s:g}s": lat[0][s] for s in LATENCY_SECONDS}, "stored_bytes": base_stored,
            "load_average_when_timed": load, "decoders": {d: c.to_dict() for d, c in test.decoders.items()}}


def _objectives(p, d: str) -> tuple[float, float, float]:
    return p.extra[f"wer_ratio_{d}"], 1 / p.extra["speedup"], 1 / p.extra["onnx_size_ratio"]


def summarize_arm(points, d: str) -> dict:
    onnx = [p for p in points if "onnx_size_ratio" in p.extra and f"wer_ratio_{d}" in p.extra]
    ok = [p for p in onnx if p.extra[f"wer_ratio_{d}"] <= WER_TOLERANCE]
    return {"hypervolume": normalised_hypervolume([_objectives(p, d) for p in onnx]),
            "best_size_ratio": max((p.extra["onnx_size_ratio"] for p in ok), default=None),
            "best_file_size_ratio": max((p.extra["file_size_ratio"] for p in ok if "file_size_ratio" in p.extra),
                                        default=None),
            "best_speedup": max((p.extra["speedup"] for p in ok), default=None),
            "points": len(onnx), "points_within_5pct": len(ok)}


def _spread(values: list) -> dict:
    vals = [v for v in values if v is not None]
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)} if vals else None


def summarize(arms) -> dict:
    """Per arm and decoder; the search arms (one arm per seed) as median and range over seeds."""
    rows: dict[str, dict] = {}
    for name in dict.fromkeys(a.name for a in arms):
        group = [a for a in arms if a.name == name]
        row = {"kind": group[0].kind, "seeds": len(group) if group[0].seed is not None else None,
               "cpu_minutes": round(sum(a.cpu_seconds for a in group) / 60 / len(group), 2),
               "note": "; ".join(a.note for a in group if a.note), "error": "; ".join(a.error for a in group if a.error)}
        for d in DECODERS:
            per_seed = [summarize_arm(a.points, d) for a in group]
            row[d] = {k: _spread([s[k] for s in per_seed]) if len(group) > 1 else per_seed[0][k]
                      for k in ("hypervolume", "best_size_ratio", "best_file_size_ratio", "best_speedup", "points",
                                "points_within_5pct")}
            if len(group) > 1:
                row[d]["per_seed_hypervolume"] = [s["hypervolume"] for s in per_seed]
        pytorch = [p for a in group for p in a.points if p.runtime == "pytorch" and "wer_ratio_deployed" in p.extra]
        if pytorch:  # against PyTorch fp32, in their own columns
            row["pytorch"] = [{"label": p.label, "speedup": p.extra.get("speedup"),
                               **{f"wer_ratio_{d}": p.extra[f"wer_ratio_{d}"] for d in DECODERS}} for p in pytorch]
        rows[name] = row
    out = {"arms": rows}
    for d in DECODERS:
        s, r = [a for a in arms if a.name == "search"], [a for a in arms if a.name == "random"]
        ratios = [summarize_arm(x.points, d)["hypervolume"] / hv for x, y in zip(s, r)
                  if (hv := summarize_arm(y.points, d)["hypervolume"]) > 0]
        out[f"hv_vs_random_{d}"] = {"median": statistics.median(ratios), "paired": ratios} if ratios else None
        search = [_objectives(p, d) for a in s for p in a.points if "onnx_size_ratio" in p.extra]
        out[f"not_dominated_by_search_{d}"] = [
            f"{a.name}:{p.label}" for a in arms if a.kind in ("uniform", "peer") for p in a.points
            if "onnx_size_ratio" in p.extra and not any(dominates(x, _objectives(p, d)) for x in search)]
    return out


def targets(summary: dict, d: str = "deployed") -> dict:
    s = summary["arms"]["search"][d]
    best = lambda k: (s[k]["max"] if isinstance(s[k], dict) else s[k]) or 0  # noqa: E731
    hv = summary.get(f"hv_vs_random_{d}")
    return {"front_dominates_uniform_and_peers": not summary[f"not_dominated_by_search_{d}"],
            "hv_vs_random": hv["median"] if hv else None,
            "hv_vs_random_met": bool(hv and hv["median"] >= TARGETS["hv_vs_random"]),
            "size_ratio_met": best("best_size_ratio") >= TARGETS["size_ratio"],
            "size_ratio_of_whole_file_met": best("best_file_size_ratio") >= TARGETS["size_ratio"],
            "speedup_met": best("best_speedup") >= TARGETS["speedup"],
            "within_cpu_hour": summary["arms"]["search"]["cpu_minutes"] <= 60}


def point_rows(arms) -> list[dict]:
    keep = ("onnx_size_ratio", "file_size_ratio", "speedup", "speedup_2s", "latency_ms", "base_latency_ms", "dev",
            "dev_wer", "baseline",
            *[f"{k}_{d}" for d in DECODERS for k in ("wer_ratio", "ci")])
    return [{"arm": p.arm, "label": p.label, "seed": p.seed, "runtime": p.runtime, "file": p.file,
             "format_aware_ratio": p.format_aware_ratio, **{k: v for k, v in p.extra.items() if k in keep}}
            for a in arms for p in a.points]


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


def _commit() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def report(o, arms, base_model, base_onnx: Path, test_manifest: Path, state, log, t0: float) -> dict:
    import resource
    import time

    from ._doc import figure, log_mlflow, write_markdown
    from ._points import write_points

    base = score_all(o, arms, base_model, base_onnx, test_manifest, state, log)
    summary = summarize(arms)
    for row in summary["arms"].values():
        row["wer_base"] = base["wer"]
    o.out.parent.mkdir(parents=True, exist_ok=True)
    figures = figure(arms, base, o.out)
    doc = {"command": o.command, "machine": machine(), "commit": _commit(), "run_folder": str(state.folder),
           "code": state.doc.get("code", []),
           "base": base, "strategy": o.strategy, "staged": o.staged,
           "budget_cpu_minutes_per_search_arm_and_seed": o.budget_minutes if o.strategy == "one-stage" else None,
           "workers": o.workers,
           "seeds": o.seeds, "space": str(o.space), "corpus": str(o.corpus), "reference_point": list(REFERENCE),
           "wer_tolerance": WER_TOLERANCE, "targets": {d: targets(summary, d) for d in DECODERS},
           "figures": figures, **summary, "all_points": point_rows(arms)}
    ru = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    doc["run_cpu_minutes_this_session"] = round(sum(r.ru_utime + r.ru_stime for r in ru) / 60, 1)
    doc["wall_minutes_this_session"] = round((time.perf_counter() - t0) / 60, 1)
    doc["points_files"] = write_points(arms, o.out.parent / o.out.name / "points", state.folder.name, log)
    write_markdown(o.out.with_suffix(".md"), doc)
    doc["mlflow_run"] = log_mlflow(o.tracking_uri, doc, figures, state.folder.name)
    return doc
