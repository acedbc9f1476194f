"""Scoring every benchmark point the same way: per-utterance word errors on the bench's own test
set with the deployed decoder (the base model folder's, beam search + LM) and greedy side by
side; ONNX latency of every point and the fp32 base in one interleaved loop; stored bytes."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import load_manifest, read_audio
from ..hardware import measure_latency
from ..models import read_config
from ..objectives import DecoderConfig, decode_all
from ._state import State
from ._stats import utterance_errors

LATENCY_SECONDS = (8.0, 2.0)
LATENCY_ROUNDS = 20
QUIET_LOAD = 0.5
SCORING_THREADS = 2  # WER scoring is not timed: use the machine


@dataclass
class TestSet:
    """The bench's test utterances and the decoders every point is scored with."""

    manifest: Path
    waves: list[np.ndarray]
    refs: list[str]
    words: list[int]
    model_dir: Path  # the base model folder: its decoder setting and assets
    decoders: dict[str, DecoderConfig]

    @classmethod
    def load(cls, manifest: Path, model_dir: Path, limit: int | None = None) -> "TestSet":
        utts = load_manifest(manifest)[0]
        utts = utts[:limit] if limit else utts
        own = DecoderConfig.from_dict(read_config(model_dir).get("decoder") or {"kind": "greedy"})
        return cls(manifest, [read_audio(u.audio_filepath) for u in utts], [u.text for u in utts],
                   [len(u.text.split()) for u in utts], Path(model_dir),
                   {"deployed": own, "greedy": own.with_(kind="greedy")})


def onnx_emissions(path: Path, spec) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    from ..export import OnnxAcousticModel

    return OnnxAcousticModel(path, spec, SCORING_THREADS).emissions


def torch_emissions(model) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    from ..objectives import emissions

    return lambda waves: emissions(model, waves, batch_seconds=0)  # one utterance at a time, as deployed


def score_point(state: State, point_file: Path, emit: Callable[[list[np.ndarray]], list[np.ndarray]],
                test: TestSet, log: Callable[[str], None] = print) -> dict[str, list[int]]:
    """Per-utterance word errors for each decoder, cached by the point file's content."""
    cache = state.score_path(point_file)
    if cache.is_file():
        return json.loads(cache.read_text())
    t0 = time.perf_counter()
    lps = emit(test.waves)
    errors = {name: utterance_errors(test.refs, decode_all(lps, test.model_dir, cfg, workers=SCORING_THREADS))
              for name, cfg in test.decoders.items()}
    cache.write_text(json.dumps(errors))
    log(f"  scored {point_file.name} on {len(test.refs)} utterances in {time.perf_counter() - t0:.0f} s")
    return errors


def wait_until_quiet(log: Callable[[str], None], limit_s: float = 120.0) -> float:
    """The 1-minute load average before timing; waits (up to `limit_s`) for it to fall below
    QUIET_LOAD and says so when it does not."""
    t0 = time.time()
    load = os.getloadavg()[0]
    while load > QUIET_LOAD and time.time() - t0 < limit_s:
        time.sleep(10)
        load = os.getloadavg()[0]
    if load > QUIET_LOAD:
        log(f"bench: warning: load average {load:.2f} > {QUIET_LOAD} while timing; latencies may be noisy")
    return load


def onnx_latencies(paths: list[Path], log: Callable[[str], None], rounds: int = LATENCY_ROUNDS,
                   ) -> tuple[list[dict[float, float]], float]:
    """Median ms per model at 8 s and 2 s: every model, 1 thread, interleaved round by round."""
    load = wait_until_quiet(log)
    return measure_latency(paths, 1, list(LATENCY_SECONDS), repeats=rounds), load
