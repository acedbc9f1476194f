"""Tucker-2 decomposition of 2-D (and 1-D) convolutions (Kim et al., ICLR 2016), HOSVD initialisation.

A conv W (C_out, C_in, k, k) becomes 1x1 reduce -> k x k core -> 1x1 expand:
    U1 = the r_out leading left singular vectors of W's mode-1 unfolding (C_out, C_in k k),
    U2 = the r_in leading ones of its mode-2 unfolding (C_in, C_out k k),
    G  = W x1 U1^T x2 U2^T  (r_out, r_in, k, k);   W ~ G x1 U1 x2 U2.
HOSVD bound: ||W - W~||_F^2 <= (discarded mode-1 sigma^2) + (discarded mode-2 sigma^2); at full
ranks the reconstruction is exact. Multiply-adds of an (H, W) -> (H', W') conv:
    C_out C_in k^2 H' W'  ->  C_in r_in H W + r_in r_out k^2 H' W' + r_out C_out H' W'
(the reduce runs at the input's resolution, before the core's stride). It applies to the
convolutional front end (the subsampling's second conv is ~38% of the fp32 model's time), and
the same way to a 1-D conv (C_out, C_in, k), e.g. a Hugging Face model's conv feature encoder:
    C_out C_in k T'  ->  C_in r_in T + r_in r_out k T' + r_out C_out T'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ._configs import ConfigError, MethodConfig, is_int, is_number
from ._layers import LayerInfo, TuckerConv2d
from ._registry import Choice, Handler, Replace, register


@dataclass(frozen=True)
class TuckerConfig(MethodConfig):
    """Tucker-2 of a 2-D conv: `rank_fraction` of both channel counts, or `ranks: [r_out, r_in]`."""

    key: ClassVar[str] = "tucker"
    rank_fraction: float | None = None
    ranks: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if (self.rank_fraction is None) == (self.ranks is None):
            raise ConfigError("tucker needs exactly one of rank_fraction, ranks")
        if self.rank_fraction is not None and (not is_number(self.rank_fraction) or not 0 < self.rank_fraction <= 1):
            raise ConfigError(f"tucker.rank_fraction={self.rank_fraction} is outside (0, 1]")
        if self.ranks is not None:
            if not isinstance(self.ranks, (list, tuple)) or len(self.ranks) != 2 or \
                    not all(is_int(r) and r >= 1 for r in self.ranks):
                raise ConfigError(f"tucker.ranks={self.ranks} must be two positive integers [r_out, r_in]")
            object.__setattr__(self, "ranks", tuple(self.ranks))


def hosvd(w: torch.Tensor, r_out: int, r_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tucker-2 factors of a (C_out, C_in, k, k) or (C_out, C_in, k) weight, as the three convs'
    weights: reduce (r_in, C_in, 1, 1), core (r_out, r_in, k, k), expand (C_out, r_out, 1, 1)
    (one kernel axis fewer for a 1-D conv)."""
    w64 = w.detach().double()
    c_out, c_in = w64.shape[:2]
    kernel_axes = (None,) * (w64.dim() - 2)  # (r, C) -> (r, C, 1, 1) for a 2-D conv, (r, C, 1) for 1-D
    u1 = torch.linalg.svd(w64.reshape(c_out, -1), full_matrices=False)[0][:, :r_out]  # (C_out, r_out)
    u2 = torch.linalg.svd(w64.transpose(0, 1).reshape(c_in, -1), full_matrices=False)[0][:, :r_in]  # (C_in, r_in)
    core = torch.einsum("oi...,or,is->rs...", w64, u1, u2)  # (r_out, r_in, *kernel)
    return u2.T[(..., *kernel_axes)].to(w.dtype), core.to(w.dtype), u1[(..., *kernel_axes)].to(w.dtype)


def ranks_for(c_out: int, c_in: int, cfg: TuckerConfig) -> tuple[int, int]:
    if cfg.ranks is not None:
        return cfg.ranks
    return max(1, round(cfg.rank_fraction * c_out)), max(1, round(cfg.rank_fraction * c_in))


@register(TuckerConfig, order=15, choices={"tucker_fraction": Choice("rank_fraction", None)},
          example={"rank_fraction": 0.5})
class Tucker2(Handler):
    replaces_layer = True

    def not_applicable(self, layer: LayerInfo, model: nn.Module) -> str | None:
        m = model.get_submodule(layer.module_name)
        if not isinstance(m, (nn.Conv2d, nn.Conv1d)) or m.groups != 1 or max(m.kernel_size) < 2:
            return "Tucker-2 applies to a full (not grouped) 1-D or 2-D conv with a kernel above 1 (x1)"
        if min(m.in_channels, m.out_channels) < 4:
            return f"{m.in_channels} -> {m.out_channels} channels leave nothing to reduce"
        return None

    def check(self, layer: LayerInfo, cfg: TuckerConfig) -> None:
        r_out, r_in = ranks_for(layer.shape[0], layer.shape[1], cfg)
        if r_out > layer.shape[0] or r_in > layer.shape[1]:
            raise ConfigError(f"tucker.ranks=[{r_out}, {r_in}] exceed the {layer.shape[0]} x {layer.shape[1]} "
                              f"channels of layer {layer.name}")

    def compute(self, weight: torch.Tensor, cfg: TuckerConfig) -> Replace:
        r_out, r_in = ranks_for(weight.shape[0], weight.shape[1], cfg)
        return Replace(list(hosvd(weight, r_out, r_in)), {"ranks": [r_out, r_in]})

    def rebuild(self, module: nn.Module, record: dict) -> nn.Module:
        return TuckerConv2d(module, *record["ranks"])
