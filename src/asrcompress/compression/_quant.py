"""Weight quantization: linear (symmetric per output channel) and logarithmic (power of two).

Linear scales are fp16 numbers, and a quantized model keeps its remaining small tensors
(biases, norm parameters, BatchNorm statistics) as fp16 numbers too, so a deployment stores
them in 2 bytes each with nothing lost: the PyTorch model, `inspect` and the ONNX file agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ._configs import ConfigError, MethodConfig
from ._registry import Choice, Handler, Projection, Values, register

QUANT_BITS = (2, 3, 4, 5, 6, 8)


@dataclass(frozen=True)
class QuantConfig(MethodConfig):
    """Weight quantization: `linear` (symmetric, per output channel) or `log` (sign + exponent)."""

    key: ClassVar[str] = "quant"
    bits: int
    kind: str = "linear"

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "log"):
            raise ConfigError(f"quant.kind={self.kind!r} is not one of linear, log")
        if isinstance(self.bits, bool) or self.bits not in QUANT_BITS:
            raise ConfigError(f"quant.bits={self.bits} is not one of {list(QUANT_BITS)}")


def linear_fake_quant(w2d: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row fake quantization with torch's kernel; returns (values, scales)."""
    qmax = 2 ** (bits - 1) - 1
    # Round the scale to fp16 (its stored type); the row maximum may then clip by < 2^-11.
    scale = (w2d.abs().amax(dim=1) / qmax).clamp(min=FP16_TINY).half().float()
    zero = torch.zeros(w2d.shape[0], dtype=torch.int32)
    q = torch.fake_quantize_per_channel_affine(w2d.float(), scale, zero, 0, -qmax, qmax)
    return q, scale


FP16_TINY = 2.0 ** -24  # the smallest positive fp16 number


def as_fp16_values(t: torch.Tensor) -> torch.Tensor:
    """`t` rounded to the nearest fp16 number, kept in its own dtype."""
    return t.detach().half().to(t.dtype)


def is_fp16_exact(t: torch.Tensor) -> bool:
    return bool(t.is_floating_point() and torch.equal(as_fp16_values(t), t.detach()))


def small_tensors(model: torch.nn.Module) -> list[torch.Tensor]:
    """The 1-D parameters (biases, norm weights) and BatchNorm running statistics."""
    out = [p for p in model.parameters() if p.ndim == 1]
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            out += [m.running_mean, m.running_var]
    return out


@torch.no_grad()
def round_small_tensors(model: torch.nn.Module) -> None:
    """Make a quantized model's small tensors fp16 numbers, which is how they are stored."""
    for t in small_tensors(model):
        t.copy_(as_fp16_values(t))


def log_quant(w2d: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sign + exponent codes: per row, values +-2^(e_max - j), j < 2^(bits-1) - 1, plus zero.

    One of the 2^(bits-1) magnitude codes is reserved for zero. Rounding is in the log domain.
    """
    levels = 2 ** (bits - 1) - 1
    mag = w2d.abs().float()
    e_max = torch.ceil(torch.log2(mag.amax(dim=1).clamp(min=1e-30)))  # (rows,)
    e_min = e_max - (levels - 1)
    e = torch.round(torch.log2(mag.clamp(min=1e-30)))
    e = torch.minimum(e, e_max[:, None])
    # Below half the smallest level (in the log domain) the weight becomes zero.
    zero = e < e_min[:, None]
    q = torch.sign(w2d) * torch.pow(2.0, torch.maximum(e, e_min[:, None]))
    q[zero] = 0.0
    return q, e_max


@register(QuantConfig, order=60,
          choices={"bits": Choice("bits", None), "quant_kind": Choice("kind", "linear", trigger=False)},
          example={"bits": 8},
          uniform={f"int{b}": [{"global": True, "quant": {"bits": b, "kind": "linear"}}] for b in (8, 4)})
class Quant(Handler):
    def view(self, tensor: torch.Tensor, state) -> torch.Tensor:
        # A clustered layer's codebook is quantized as one tensor (one scale), so the k shared
        # values stay k after quantization.
        return tensor.reshape(1, -1) if state.clusters is not None else tensor

    def storage(self, state) -> dict | None:
        if not state.bits:
            return None
        # fp16 scales for linear, one int8 exponent for log; a quantized codebook has one scale
        return {"bits": state.bits, "scale_bytes": 2 if state.quant_kind == "linear" else 1,
                "scales": "one" if state.clusters else "row"}

    def lowering(self, state) -> dict | None:
        if not state.bits:
            return None
        return {"grid_bits": state.bits} if state.quant_kind == "linear" else {"no_kernel": "no power-of-two kernel"}

    def keep(self, weight: torch.Tensor, state) -> Projection | None:
        if not state.bits or state.clusters:
            return None  # a clustered layer's codebook is on the grid already: snapping keeps both
        fn = linear_fake_quant if state.quant_kind == "linear" else log_quant

        def project(w: torch.Tensor) -> torch.Tensor:
            return torch.where(w == 0, w, fn(w.reshape(w.shape[0], -1), state.bits)[0].view_as(w))

        return project

    def compute(self, weight: torch.Tensor, cfg: QuantConfig) -> Values:
        w2d = weight.detach().reshape(weight.shape[0], -1)
        fn = linear_fake_quant if cfg.kind == "linear" else log_quant
        q, _ = fn(w2d, cfg.bits)
        # Pruned weights stay exactly zero on both grids.
        q = torch.where(w2d == 0, torch.zeros_like(q), q)
        return Values(q.reshape(weight.shape).to(weight.dtype), {"bits": cfg.bits, "quant_kind": cfg.kind})
