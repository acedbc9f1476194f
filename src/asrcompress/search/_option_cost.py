"""What one option costs against the base, for the surrogate: the exact stored bytes it saves,
and the predicted latency change on each hardware profile (the calibrated predictor on the
option's ONNX graph, never a timing).

The predictor is a sum over the graph's operators, so an option's latency change depends on
the layer's kind and shape and the option, not on where the layer sits: the change is computed
once per (layer kinds and shapes, option) and reused for every layer of that signature (the
eight blocks' FFNs share one export). Sparsity and other value-only changes come out as exactly
zero, since no sparse kernel runs; nothing is credited that the graph does not run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from torch import nn

from ..compression import discover_layers, lowering, size_report
from ..export import export_onnx
from ..hardware import Profile, graph_ops, predict_ms
from ._trial import REFERENCE_S


class OptionCost:
    """Bytes and predicted milliseconds of compressed models, relative to `base`."""

    def __init__(self, base: nn.Module, profiles: dict[str, Profile]) -> None:
        self.profiles = profiles
        self.shapes = {layer.name: (layer.kind, tuple(layer.shape)) for layer in discover_layers(base)}
        self._base_tensors = {k: tuple(v.shape) for k, v in base.state_dict().items()}
        report = size_report(base)
        self.base_bytes = report["total_bytes"]
        self._base_own = report["total_bytes"] - report["other_bytes"] + report["other_bytes_fp32"]
        self._dms: dict[tuple, dict[str, float]] = {}
        self._donnx: dict[tuple, float] = {}
        self.exports = 0  # ONNX exports so far (the base's included)
        self.onnx_bytes = 0  # the last export's file size
        self.base_ms = self.predict(base, {}) if profiles else {}
        self.base_onnx_bytes = self.onnx_bytes if profiles else None

    def predict(self, model: nn.Module, states: dict) -> dict[str, float]:
        """Predicted ms of `model`'s ONNX graph on each profile (one export, one graph walk)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            export_onnx(model, states, path)
            ops = graph_ops(path, REFERENCE_S)
            self.onnx_bytes = path.stat().st_size
        self.exports += 1
        return {name: predict_ms(ops, p)[0] for name, p in self.profiles.items()}

    def of(self, model: nn.Module, states: dict, layers: tuple[str, ...], label: str,
           latency: bool = True) -> dict[str, float]:
        """`dbytes`: the stored bytes the option changes (negative saves), apart from the rest
        of the model; `quantized_rest`: what a quantized model saves on that rest (its small
        tensors go to fp16; 0 for an option that quantizes nothing), counted once per model;
        with latency, `dms@PROFILE` and `donnx`, the .onnx file's size change (what deploys:
        6-bit is stored as int8 there, sparsity and log grids as dense fp32)."""
        report = size_report(model, states, self.base_bytes)
        own = report["total_bytes"] - report["other_bytes"] + report["other_bytes_fp32"]
        out: dict[str, float] = {"dbytes": float(own - self._base_own),
                                 "quantized_rest": float(report["other_bytes"] - report["other_bytes_fp32"])}
        if self.profiles and latency:
            key = (tuple(self.shapes.get(layer) for layer in layers), label)
            if key not in self._dms:
                if self._same_graph(model, states):
                    self._dms[key], self._donnx[key] = {name: 0.0 for name in self.profiles}, 0.0
                else:
                    ms = self.predict(model, states)
                    self._dms[key] = {name: ms[name] - self.base_ms[name] for name in ms}
                    self._donnx[key] = float(self.onnx_bytes - self.base_onnx_bytes)
            out.update({f"dms@{name}": v for name, v in self._dms[key].items()})
            out["donnx"] = self._donnx[key]
        return out

    def _same_graph(self, model: nn.Module, states: dict) -> bool:
        """Whether `model` exports the base's graph: every tensor keeps its name and shape, and
        no layer is lowered to an integer kernel (sparsity, sharing and power-of-two grids
        export dense fp32). Its latency change is then exactly zero, without an export."""
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        return shapes == self._base_tensors and not any(lowering(st).get("grid_bits") for st in states.values())

    def total_bytes(self, rows: list[dict]) -> float:
        """Stored bytes of the base with all of `rows`' options applied (the additive size model)."""
        return total_bytes(self.base_bytes, rows)

    def fields(self) -> list[str]:
        return ["dbytes", "quantized_rest", *((f"dms@{name}" for name in self.profiles)),
                *(["donnx"] if self.profiles else [])]


def total_bytes(base_bytes: float, rows: list[dict]) -> float:
    """`base_bytes` plus each row's `dbytes`, plus the largest `quantized_rest` saving once (the
    rest of the model goes to fp16 once, however many layers are quantized)."""
    return base_bytes + sum(r["dbytes"] for r in rows) + min((r["quantized_rest"] for r in rows), default=0.0)
