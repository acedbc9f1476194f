"""Measured latency and peak memory of ONNX models with ONNX Runtime on this machine.

Models are timed round-robin in one process, so drift in clock speed or load hits all of
them alike and their ratios stay fair; each timed run follows an untimed one of the same model,
so no model pays for the caches its predecessor in the loop filled. Peak memory is measured in a fresh process per model:
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

from ..models import FeatureSpec
from ._graph import session_options


def frames_for(seconds: float) -> int:
    """Log-mel frames (10 ms hop) of `seconds` of 16 kHz audio."""
    return FeatureSpec("log_mel", n_mels=1).steps(int(round(seconds * 16000)))


def graph_spec(sess: ort.InferenceSession) -> FeatureSpec:
    """What an exported graph eats, from its own input."""
    inp = sess.get_inputs()[0]
    return FeatureSpec.of_graph(inp.name, list(inp.shape))


def audio_feeds(sess: ort.InferenceSession, seconds: float, zeros: bool = False) -> dict[str, np.ndarray]:
    """The graph's input for one utterance of `seconds` (random normal, or zeros)."""
    spec = graph_spec(sess)
    shape = spec.shape_for(seconds)
    x = np.zeros(shape, np.float32) if zeros else np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return {spec.input_name: x}


def measure_latency(paths: list[Path], threads: int, seconds: list[float], repeats: int = 20,
                    warmup: int = 3, rewarm: bool = True) -> list[dict[float, float]]:
    """Median milliseconds per model and input length, timed interleaved. With `rewarm`, each
    timed run follows one untimed run of the same model and length: a model timed straight
    after another finds its weights evicted from the caches, so its time would depend on which
    model came before it in the loop (up to 10% on an 18 MB model here), where a deployment runs
    one model again and again."""
    sessions = [ort.InferenceSession(str(p), session_options(threads), providers=["CPUExecutionProvider"])
                for p in paths]
    feeds = [{s: audio_feeds(sess, s) for s in seconds} for sess in sessions]
    times: list[dict[float, list[float]]] = [{s: [] for s in seconds} for _ in paths]
    for rep in range(warmup + repeats):
        for i, sess in enumerate(sessions):
            for s in seconds:
                if rewarm and len(paths) > 1:
                    sess.run(None, feeds[i][s])
                t0 = time.perf_counter()
                sess.run(None, feeds[i][s])
                if rep >= warmup:
                    times[i][s].append((time.perf_counter() - t0) * 1e3)
    return [{s: statistics.median(v) for s, v in t.items()} for t in times]


_PEAK_SCRIPT = """
import json, sys, numpy as np, onnxruntime as ort
def rss(key):
    for line in open('/proc/self/status'):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
path, threads, name, shapes = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
opts = ort.SessionOptions(); opts.intra_op_num_threads = threads; opts.inter_op_num_threads = 1
before = rss('VmRSS:')
sess = ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
for shape in shapes:
    sess.run(None, {name: np.zeros(shape, dtype=np.float32)})
print(json.dumps({'peak_mem_mb': rss('VmHWM:') - before}))
"""


def peak_memory_mb(path: Path, threads: int, seconds: list[float]) -> float:
    spec = graph_spec(ort.InferenceSession(str(path), session_options(1), providers=["CPUExecutionProvider"]))
    shapes = json.dumps([list(spec.shape_for(s)) for s in seconds])
    p = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(path), str(threads), spec.input_name, shapes],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"peak-memory probe of {path} failed: {p.stderr.strip().splitlines()[-1:]}")
    return float(json.loads(p.stdout)["peak_mem_mb"])
