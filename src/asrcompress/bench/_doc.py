"""docs/benchmarks.{md,html,png} and the benchmark's own MLflow experiment (asrcompress/bench)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .._outputs import output_file, write_text

PEER_NOTES = {
    "ort_dynamic_default": "ONNX Runtime's quantize_dynamic with its defaults: Conv is quantized too (ConvInteger), "
                           "which ONNX Runtime ran slower than fp32 on both hosts measured (an AVX2 AMD EPYC "
                           "without VNNI, and an Intel Xeon with AVX-512 VNNI and AMX).",
    "ort_dynamic_matmul": "quantize_dynamic on MatMuls only, per-channel: the best dynamic setting measured here.",
    "torch_ao_dynamic": "torch.ao dynamic int8 on every nn.Linear (torch skips attention's out_proj); PyTorch "
                        "runtime, so its WER ratio and speed-up are against PyTorch fp32, measured in the same loop, "
                        "and it is kept out of every ONNX hypervolume.",
    "intel_neural_compressor": "INC 3.x has no ONNX Runtime backend any more (it moved to onnx/neural-compressor); "
                               "accuracy-aware `autotune` of the PyTorch model over RTN weight-only configs, "
                               "tolerance 5% relative dev WER. PyTorch runtime, against PyTorch fp32.",
    "olive": "olive-ai 0.13.0 (the newest the registry serves) installs and imports but cannot run this search: "
             "a custom (WER) metric gets backend None in Metric.validate_backend and serialising it fails "
             "(olive/evaluator/metric.py). peer_scripts/olive_tune.py reproduces the failure on every run.",
    "mct": "Sony Model Compression Toolkit 2.6.1 installs but does not import: it needs torchvision, and the "
           "registry's torchvision 0.28.0 is a CUDA build (`torchvision::nms does not exist` on CPU torch); not run.",
}


def _f(v, fmt: str = "{:.2f}x", none: str = "-") -> str:
    if isinstance(v, dict):
        return f"{fmt.format(v['median'])} [{fmt.format(v['min'])}, {fmt.format(v['max'])}]"
    return none if v is None else fmt.format(v)


def _point_line(p: dict, base: dict) -> str:
    cells = []
    for d in ("deployed", "greedy"):
        r, ci = p.get(f"wer_ratio_{d}"), p.get(f"ci_{d}")
        cells.append("-" if r is None else f"{r:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]")
    seed = "" if p["seed"] is None else f" s{p['seed']}"
    return (f"| {p['arm']}{seed} | {p['label']} | {p['runtime']} | {cells[0]} | {cells[1]} | "
            f"{_f(p.get('speedup'))} | {_f(p.get('speedup_2s'))} | {_f(p.get('onnx_size_ratio'))} | "
            f"{_f(p.get('file_size_ratio'))} | "
            f"{_f(p.get('format_aware_ratio'))} |")


def _arms_line(doc: dict) -> str:
    if doc.get("strategy", "one-stage") == "one-stage":
        return (f"each search arm ran {doc['seeds']} seed(s) of {doc['budget_cpu_minutes_per_search_arm_and_seed']} "
                f"CPU-minutes on {doc['workers']} worker(s) (one-stage: TPE against random trials).")
    st = doc["staged"]
    return (f"each search arm ran {doc['seeds']} seed(s) of the staged search (scan, {st['proposals']} surrogate "
            f"policies, {st['candidates']} candidates scored in ONNX, finalists recovered over rungs "
            f"{','.join(map(str, st['rungs']))} KD steps, timed and scored)"
            "; \"search\" proposes with NSGA-II seeded by knapsack picks, \"random\" with uniform "
            "random proposals, every other stage the same. CPU-min is measured, the shared scan's included in each.")


def write_markdown(path: Path, doc: dict) -> None:
    b = doc["base"]
    lines = [
        "# Benchmark: the search against random search, uniform policies and peer tools", "",
        "Produced by one command (all arms in one run, scored side by side; re-running it resumes the run):", "",
        f"    {doc['command']}", "",
        f"Machine: {doc['machine']}; commit {doc['commit']}. Space `{doc['space']}`, corpus `{doc['corpus']}`; "
        + _arms_line(doc), "",
        *([f"**Mixed run: the code changed while it was under way** (sources {' -> '.join(doc['code'])}); steps "
           "finished before a change were made by the older code.", ""] if len(doc.get("code", [])) > 1 else []),
        f"**Test set**: the bench's own, {b['utterances']} utterances ({b['words']} words) from a seed used nowhere "
        f"else, voices never in training (`{b['manifest']}`). **WER** of every point with the deployed decoder "
        f"({b['decoders']['deployed']['kind']}, the base model folder's) and greedy, one utterance at a time; each "
        "point's WER ratio to the base comes with a paired bootstrap 95% interval over utterances (1,000 resamples); "
        "\"within 5%\" is judged on the point estimate. **Size** is what the `.onnx` file stores (initializers), "
        "the same count for every ONNX point, and beside it the whole file's bytes; the format-aware figure "
        "(`asrcompress inspect`, which credits sparse and codebook formats no kernel runs) is another column, "
        "**not deployed**. **Latency**: every ONNX point "
        f"and the fp32 base in one interleaved loop, 1 thread, 8 s and 2 s inputs, median of 20 rounds (load "
        f"average {b['load_average_when_timed']:.2f} when timed). PyTorch-runtime peers are scored against PyTorch "
        "fp32 in their own columns and kept out of every hypervolume. **Hypervolume**: normalised objectives "
        f"(WER / base, latency / base, size / base), reference {doc['reference_point']}: only points at most 10% "
        "worse than the base on WER, and no slower or larger, add volume.", "",
        f"Base (fp32 ONNX): test WER {100 * b['wer']['deployed']:.2f}% deployed decoder, {100 * b['wer']['greedy']:.2f}% "
        f"greedy; {b['latency_ms']['8s']:.1f} ms for 8 s, {b['latency_ms']['2s']:.1f} ms for 2 s; "
        f"{b['stored_bytes'] / 1e6:.2f} MB stored.", "",
        "| arm | decoder | hypervolume | best .onnx size ratio | best file ratio | best speed-up (8 s) | "
        "points (within 5%) | CPU-min | note |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in doc["arms"].items():
        note = (r["note"] + (f" **error:** {r['error']}" if r["error"] else "")).replace("|", "/")
        for d in ("deployed", "greedy"):
            x = r[d]
            lines.append(f"| {name} | {d} | {_f(x['hypervolume'], '{:.4f}')} | {_f(x['best_size_ratio'])} | "
                         f"{_f(x.get('best_file_size_ratio'))} | {_f(x['best_speedup'])} | "
                         f"{_f(x['points'], '{:.0f}')} ({_f(x['points_within_5pct'], '{:.0f}')}) | "
                         f"{r['cpu_minutes']:.1f} | {note if d == 'deployed' else ''} |")
    lines += ["", "Search arms: median [min, max] over seeds. HV(search) / HV(random), the median of the paired "
              "seeds' ratios: " + ", ".join(f"{d} {_f(doc.get(f'hv_vs_random_{d}') and doc[f'hv_vs_random_{d}']['median'], '{:.3f}x', 'random has no volume')}"
                                            for d in ("deployed", "greedy")), "", "## Targets (deployed decoder)", ""]
    t = doc["targets"]["deployed"]
    lines += [f"- {k}: **{v}**" for k, v in t.items()]
    lines += ["", "Not dominated by the search's points: " + (", ".join(doc["not_dominated_by_search_deployed"]) or
                                                              "none"), "",
              "Figures: " + ", ".join(f"`{f}`" for f in doc["figures"]), "",
              "## Reproducible points", "",
              "Each search arm's best-size and best-speed points within 5% (deployed decoder), per seed, as recipes: "
              "`asrcompress compress --recipe FILE --out DIR` rebuilds the model from the base model and the "
              "built-in corpus; the recipe keeps what the bench measured.", ""]
    lines += [f"- `{f}`" for f in doc.get("points_files", [])] or ["- none: no search point within 5%"]
    lines += ["", "## Peers", ""]
    lines += [f"- **{n}**: {t}" for n, t in PEER_NOTES.items()]
    lines += ["", "## Every point", "",
              "| arm | point | runtime | WER / base, deployed [95% CI] | WER / base, greedy [95% CI] | speed-up 8 s | "
              "speed-up 2 s | .onnx size ratio | file ratio | format-aware ratio (not deployed) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [_point_line(p, b) for p in doc["all_points"]]
    write_text(path, "\n".join(lines) + "\n")


def figure(arms, base: dict, stem: Path) -> list[str]:
    """WER ratio (deployed decoder, with its 95% interval) against latency and size ratios."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=["WER ratio vs latency ratio (8 s)", "WER ratio vs .onnx size ratio"])
    names = list(dict.fromkeys(a.name for a in arms))
    for k, name in enumerate(names):
        pts = [p for a in arms if a.name == name for p in a.points if "onnx_size_ratio" in p.extra
               and "wer_ratio_deployed" in p.extra]
        if not pts:
            continue
        color = qualitative.Dark24[k % len(qualitative.Dark24)]  # 24 colours: the bench has about 16 arms
        ys = [p.extra["wer_ratio_deployed"] for p in pts]
        err = dict(type="data", symmetric=False, array=[p.extra["ci_deployed"][1] - y for p, y in zip(pts, ys)],
                   arrayminus=[y - p.extra["ci_deployed"][0] for p, y in zip(pts, ys)], thickness=1)
        for col, x_of in ((1, lambda p: 1 / p.extra["speedup"]), (2, lambda p: 1 / p.extra["onnx_size_ratio"])):
            fig.add_trace(go.Scatter(x=[x_of(p) for p in pts], y=ys, error_y=err, mode="markers",
                                     marker={"color": color, "size": 7}, name=name, legendgroup=name,
                                     showlegend=col == 1, text=[p.label for p in pts]), row=1, col=col)
    for col in (1, 2):
        fig.add_hline(y=1.05, line_dash="dot", row=1, col=col)
        fig.add_trace(go.Scatter(x=[1.0], y=[1.0], mode="markers", name="fp32 base", showlegend=col == 1,
                                 marker={"symbol": "x", "size": 12, "color": "black"}), row=1, col=col)
    fig.update_xaxes(type="log", title_text="latency / fp32", row=1, col=1)
    fig.update_xaxes(type="log", title_text=".onnx stored bytes / fp32", row=1, col=2)
    fig.update_yaxes(title_text="test WER / base (deployed decoder, 95% CI)", row=1, col=1)
    fig.update_layout(width=1300, height=560, title="asrcompress bench (dotted: WER 5% above the base)")
    written = []
    with output_file(stem.with_suffix(".html"), {}) as tmp:
        fig.write_html(str(tmp), include_plotlyjs="cdn")
    written.append(str(stem.with_suffix(".html")))
    try:
        os.environ.setdefault("BROWSER_PATH", "/usr/bin/chromium")
        with output_file(stem.with_suffix(".png"), {}) as tmp:
            fig.write_image(str(tmp), scale=1)
        written.append(str(stem.with_suffix(".png")))
    except Exception as e:  # kaleido needs a Chromium; the HTML stays the primary figure
        written.append(f"PNG not written: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    return written


def log_mlflow(uri: str, doc: dict, figures: list[str], run_name: str) -> str:
    """One parent run per benchmark run, one child per arm, in the experiment asrcompress/bench."""
    from ..tracking import Tracker

    tr = Tracker(uri, "bench")
    parent = tr.create_run(f"bench-{run_name}", {"command": doc["command"][:500]})
    for name, r in doc["arms"].items():
        child = tr.create_run(name, {"kind": r["kind"], "error": r["error"][:500]}, parent=parent)
        for d in ("deployed", "greedy"):
            for k in ("hypervolume", "best_size_ratio", "best_speedup"):
                v = r[d][k]
                v = v["median"] if isinstance(v, dict) else v
                if v is not None:
                    tr.log_metric(child, f"{k}_{d}", float(v))
        tr.log_metric(child, "cpu_minutes", float(r["cpu_minutes"]))
        tr.finish_run(child)
    for f in figures:
        if Path(f).exists():
            tr.log_artifact(parent, Path(f))
    tr.log_text(parent, json.dumps(doc, indent=1, default=str), "benchmarks.json")
    hv = doc.get("hv_vs_random_deployed")
    if hv:
        tr.log_metric(parent, "hv_search_over_random", float(hv["median"]))
    tr.finish_run(parent)
    return parent
