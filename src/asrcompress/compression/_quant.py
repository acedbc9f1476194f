"""Weight quantization: linear (symmetric per output channel) and logarithmic (power of two)."""

from __future__ import annotations

import torch

from ._configs import QuantConfig
from ._registry import Handler, Values, register


def linear_fake_quant(w2d: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row fake quantization with torch's kernel; returns (values, scales)."""
    qmax = 2 ** (bits - 1) - 1
    scale = (w2d.abs().amax(dim=1) / qmax).clamp(min=1e-12).float()
    zero = torch.zeros(w2d.shape[0], dtype=torch.int32)
    q = torch.fake_quantize_per_channel_affine(w2d.float(), scale, zero, 0, -qmax, qmax)
    return q, scale


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


@register(QuantConfig)
class Quant(Handler):
    def compute(self, weight: torch.Tensor, cfg: QuantConfig) -> Values:
        w2d = weight.detach().reshape(weight.shape[0], -1)
        fn = linear_fake_quant if cfg.kind == "linear" else log_quant
        q, _ = fn(w2d, cfg.bits)
        # Pruned weights stay exactly zero on both grids.
        q = torch.where(w2d == 0, torch.zeros_like(q), q)
        return Values(q.reshape(weight.shape).to(weight.dtype), {"bits": cfg.bits, "quant_kind": cfg.kind})
