"""Measured latency and peak memory of ONNX models with ONNX Runtime on this machine.

Models are timed round-robin in one process, so drift in clock speed or load hits all of
them alike and their ratios stay fair. Peak memory is measured in a fresh process per model:
the peak resident set (VmHWM) minus the resident set just before the session is created.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ._graph import session_options

HOP_S = 0.01  # one feature frame per 10 ms


def frames_for(seconds: float) -> int:
    return 1 + int(round(seconds * 16000)) // 160


def _feeds(frames: int, n_mels: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"feats": rng.standard_normal((1, frames, n_mels)).astype(np.float32)}


def measure_latency(paths: list[Path], threads: int, seconds: list[float], repeats: int = 20,
                    warmup: int = 3, n_mels: int = 80) -> list[dict[float, float]]:
    """Median milliseconds per model and input length, timed interleaved."""
    sessions = [ort.InferenceSession(str(p), session_options(threads), providers=["CPUExecutionProvider"])
                for p in paths]
    feeds = {s: _feeds(frames_for(s), n_mels) for s in seconds}
    times: list[dict[float, list[float]]] = [{s: [] for s in seconds} for _ in paths]
    for rep in range(warmup + repeats):
        for i, sess in enumerate(sessions):
            for s in seconds:
                t0 = time.perf_counter()
                sess.run(None, feeds[s])
                if rep >= warmup:
                    times[i][s].append((time.perf_counter() - t0) * 1e3)
    return [{s: statistics.median(v) for s, v in t.items()} for t in times]


_PEAK_SCRIPT = """
import json, sys, numpy as np, onnxruntime as ort
def rss(key):
    for line in open('/proc/self/status'):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
path, threads, frames, n_mels = sys.argv[1], int(sys.argv[2]), [int(f) for f in sys.argv[3].split(',')], int(sys.argv[4])
opts = ort.SessionOptions(); opts.intra_op_num_threads = threads; opts.inter_op_num_threads = 1
before = rss('VmRSS:')
sess = ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
for f in frames:
    sess.run(None, {'feats': np.zeros((1, f, n_mels), dtype=np.float32)})
print(json.dumps({'peak_mem_mb': rss('VmHWM:') - before}))
"""


def peak_memory_mb(path: Path, threads: int, seconds: list[float], n_mels: int = 80) -> float:
    frames = ",".join(str(frames_for(s)) for s in seconds)
    p = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(path), str(threads), frames, str(n_mels)],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"peak-memory probe of {path} failed: {p.stderr.strip().splitlines()[-1:]}")
    return float(json.loads(p.stdout)["peak_mem_mb"])
