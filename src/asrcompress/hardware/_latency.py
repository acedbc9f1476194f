"""The latency objective: measured on the profile's own machine, predicted elsewhere."""

from __future__ import annotations

from pathlib import Path

import onnx

from ._graph import graph_ops
from ._measure import measure_latency, peak_memory_mb
from ._predict import predict_ms
from ._profile import Profile

SECONDS = (2.0, 8.0)
CHUNK_S = 0.64


def _predicted_peak_mb(path: Path, ops) -> float:
    """Stored weights plus the largest single operator's activations, as a lower bound."""
    weights = sum(onnx.numpy_helper.to_array(i).nbytes for i in onnx.load(str(path)).graph.initializer)
    return (weights + max((op.act_bytes for op in ops), default=0.0)) / 1e6


def latency_report(path: Path, profile: Profile, seconds: tuple[float, ...] = SECONDS,
                   chunk_s: float = CHUNK_S, repeats: int = 20) -> dict:
    """`latency_ms` and `rtf` are for the longest length; `streaming` times one chunk run on
    its own (the model has no streaming state, so chunks carry no left context)."""
    lengths = sorted(set(seconds) | {chunk_s})
    if profile.measure:
        ms = measure_latency([path], profile.threads, lengths, repeats=repeats)[0]
        peak = peak_memory_mb(path, profile.threads, list(seconds))
        source = "measured"
    else:
        ops = {s: graph_ops(path, s, threads=1) for s in lengths}
        ms = {s: predict_ms(ops[s], profile)[0] for s in lengths}
        peak = _predicted_peak_mb(path, ops[max(seconds)])
        source = "predicted"
    longest = max(seconds)

    def sig(x: float) -> float:
        return float(f"{x:.6g}")

    return {
        "profile": profile.name,
        "latency_ms": sig(ms[longest]),
        "rtf": sig(ms[longest] / 1e3 / longest),
        "peak_mem_mb": round(peak, 2),
        "source": source,
        "per_length": {f"{s:g}s": {"latency_ms": sig(ms[s]), "rtf": sig(ms[s] / 1e3 / s)}
                       for s in seconds},
        "streaming": {"chunk_s": chunk_s, "chunk_ms": sig(ms[chunk_s]),
                      "rtf": sig(ms[chunk_s] / 1e3 / chunk_s), "left_context": False},
        "threads": profile.threads,
    }
