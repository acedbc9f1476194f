"""Weight quantization: linear (symmetric, per output channel or per block of `group` inputs)
and logarithmic (power of two), rounded to nearest or by GPTQ (`_gptq`).

Shapes: a weight is viewed as (out, in * kernel); with `group` g, each row is cut into
ceil(in / g) blocks of g inputs (the last zero-padded), one scale each: scales (out, blocks).
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

QUANT_BITS = (2, 3, 4, 5, 6, 7, 8)
GROUPS = (0, 32, 64, 128)  # 0: one scale per output row
ROUNDINGS = ("nearest", "gptq")


@dataclass(frozen=True)
class QuantConfig(MethodConfig):
    """Weight quantization: `linear` (symmetric; per output channel, or per block of `group`
    inputs) or `log` (sign + exponent, per row). `rounding`: nearest, or gptq (error-minimising,
    from calibration activations: needs data)."""

    key: ClassVar[str] = "quant"
    bits: int
    kind: str = "linear"
    group: int = 0
    rounding: str = "nearest"

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "log"):
            raise ConfigError(f"quant.kind={self.kind!r} is not one of linear, log")
        if isinstance(self.bits, bool) or self.bits not in QUANT_BITS:
            raise ConfigError(f"quant.bits={self.bits} is not one of {list(QUANT_BITS)}")
        if isinstance(self.group, bool) or self.group not in GROUPS:
            raise ConfigError(f"quant.group={self.group} is not one of {list(GROUPS)} (0: per row)")
        if self.rounding not in ROUNDINGS:
            raise ConfigError(f"quant.rounding={self.rounding!r} is not one of {', '.join(ROUNDINGS)}")
        if self.kind == "log" and (self.group or self.rounding != "nearest"):
            raise ConfigError("quant.kind=log takes neither group nor rounding (one exponent per row, nearest)")


def group_scales(w2d: torch.Tensor, bits: int, group: int) -> torch.Tensor:
    """Symmetric scales, fp16-rounded (their stored type): (out,) per row, or (out, blocks)."""
    qmax = 2 ** (bits - 1) - 1
    if not group:
        return (w2d.abs().amax(dim=1) / qmax).clamp(min=FP16_TINY).half().float()
    blocks = blocked(w2d, group)  # (out, blocks, group)
    return (blocks.abs().amax(dim=2) / qmax).clamp(min=FP16_TINY).half().float()


def blocked(w2d: torch.Tensor, group: int) -> torch.Tensor:
    """(out, in) -> (out, ceil(in / group), group), zero-padded."""
    rows, cols = w2d.shape
    pad = -cols % group
    return torch.nn.functional.pad(w2d.float(), (0, pad)).reshape(rows, -1, group)


def quantize_with(w2d: torch.Tensor, scales: torch.Tensor, bits: int, group: int) -> torch.Tensor:
    """w on the grid the scales give, clamp(round(w / s), -qmax, qmax) * s, by torch's
    per-channel fake-quantization kernel (a block is a channel of its own)."""
    qmax = 2 ** (bits - 1) - 1
    rows = w2d.shape[0]
    units = blocked(w2d, group).reshape(-1, group) if group else w2d.float()  # (rows * blocks, group)
    s = scales.reshape(-1)
    q = torch.fake_quantize_per_channel_affine(units, s, torch.zeros(s.numel(), dtype=torch.int32), 0, -qmax, qmax)
    return q.reshape(rows, -1)[:, : w2d.shape[1]] if group else q


def linear_fake_quant(w2d: torch.Tensor, bits: int, group: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric fake quantization, per row or per block of `group` inputs; returns (values, scales).
    The row (block) maximum may clip by < 2^-11 once its scale is rounded to fp16."""
    scales = group_scales(w2d, bits, group)
    return quantize_with(w2d, scales, bits, group), scales


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
          choices={"bits": Choice("bits", None), "quant_kind": Choice("kind", "linear", trigger=False),
                   "group": Choice("group", 0, trigger=False), "rounding": Choice("rounding", "nearest", trigger=False)},
          example={"bits": 8},
          uniform={f"int{b}": [{"global": True, "quant": {"bits": b, "kind": "linear"}}] for b in (8, 4)})
class Quant(Handler):
    def view(self, tensor: torch.Tensor, state) -> torch.Tensor:
        # A clustered layer's codebook is quantized as one tensor (one scale), so the k shared
        # values stay k after quantization.
        return tensor.reshape(1, -1) if state.clusters is not None else tensor

    def needs_calibration(self, cfg: QuantConfig) -> str | None:
        return "quant.rounding gptq" if cfg.rounding == "gptq" else None

    def storage(self, state) -> dict | None:
        if not state.bits:
            return None
        # fp16 scales for linear, one int8 exponent for log; a quantized codebook has one scale
        group = group_of(state)
        return {"bits": state.bits, "scale_bytes": 2 if state.quant_kind == "linear" else 1,
                "scales": "one" if state.clusters else (f"group{group}" if group else "row")}

    def lowering(self, state) -> dict | None:
        if not state.bits:
            return None
        if state.quant_kind != "linear":
            return {"no_kernel": "no power-of-two kernel"}
        return {"grid_bits": state.bits, "group": group_of(state)}

    def keep(self, weight: torch.Tensor, state) -> Projection | None:
        if not state.bits or state.clusters:
            return None  # a clustered layer's codebook is on the grid already: snapping keeps both
        group = group_of(state)

        def project(w: torch.Tensor) -> torch.Tensor:
            w2d = w.reshape(w.shape[0], -1)
            q = linear_fake_quant(w2d, state.bits, group)[0] if state.quant_kind == "linear" else \
                log_quant(w2d, state.bits)[0]
            return torch.where(w == 0, w, q.view_as(w).to(w.dtype))

        return project

    def compute(self, weight: torch.Tensor, cfg: QuantConfig, calibration: torch.Tensor | None = None) -> Values:
        w2d = weight.detach().reshape(weight.shape[0], -1)
        if cfg.kind == "log":
            q, _ = log_quant(w2d, cfg.bits)
        elif cfg.rounding == "gptq" and calibration is not None:
            from ._gptq import gptq

            q = gptq(w2d, calibration, cfg.bits, cfg.group)
        else:
            q, _ = linear_fake_quant(w2d, cfg.bits, cfg.group)
        # Pruned weights stay exactly zero on both grids.
        q = torch.where(w2d == 0, torch.zeros_like(q), q)
        meta = {"bits": cfg.bits, "quant_kind": cfg.kind}
        if cfg.group:
            meta["group"] = cfg.group
        if cfg.rounding != "nearest":
            meta["rounding"] = cfg.rounding if calibration is not None else "nearest (no calibration data)"
        return Values(q.reshape(weight.shape).to(weight.dtype), meta)


def group_of(state) -> int:
    """The block size a layer was quantized with (0: per row), from its state."""
    return int(state.extra.get("quant", {}).get("group", 0))
