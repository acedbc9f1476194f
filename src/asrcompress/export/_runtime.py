"""Run an exported model with ONNX Runtime: per-utterance log-probabilities for `evaluate`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from ..data import LogMel
from ..errors import UserError


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
    """Features on torch (the same LogMel as training), the acoustic model on ONNX Runtime."""

    def __init__(self, path: Path, n_mels: int, threads: int = 1) -> None:
        self.session = session(path, threads)
        self.features = LogMel(n_mels=n_mels).eval()

    @torch.no_grad()
    def emissions(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for w in waves:
            feats, _ = self.features(torch.from_numpy(w)[None].float(), torch.tensor([w.size]))
            out.append(self.session.run(None, {"feats": feats.numpy()})[0][0])  # (T', V)
        return out
