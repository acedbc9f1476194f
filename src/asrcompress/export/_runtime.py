"""Run an exported model with ONNX Runtime: per-utterance log-probabilities for `evaluate`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..errors import UserError
from ..models import FeatureSpec


def session_options(threads: int, optimized_path: str | None = None,
                    level: ort.GraphOptimizationLevel = ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                    ) -> ort.SessionOptions:
    """The settings every session here runs with: `threads` intra-op threads, sequential."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = level
    opts.log_severity_level = 3
    if optimized_path:
        opts.optimized_model_filepath = optimized_path
    return opts


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    from ._bundle import verify_if_bundled

    verify_if_bundled(path)  # an .onnx inside an export bundle must match its SHA256SUMS
    try:
        return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception types for bad files
        raise UserError(f"{path}: not a loadable ONNX model ({str(e).splitlines()[0][:200]})") from None


class OnnxAcousticModel:
    """The graph's input computed as training computed it (`FeatureSpec.prepare`: the same
    LogMel, or the normalised waveform), the acoustic model on ONNX Runtime."""

    def __init__(self, path: Path, spec: FeatureSpec, threads: int = 1) -> None:
        self.session = session(path, threads)
        self.spec = spec

    def emissions(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        name = self.spec.input_name
        return [self.session.run(None, {name: self.spec.prepare(w)})[0][0] for w in waves]  # (T', V) each
