"""Unstructured magnitude pruning: its config, handler and search choice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ._configs import ConfigError, MethodConfig, is_number
from ._registry import Choice, Handler, Mask, Projection, register


@dataclass(frozen=True)
class MagnitudePruneConfig(MethodConfig):
    """Zero the smallest-magnitude weights; exactly round(sparsity * n) of them."""

    key: ClassVar[str] = "prune"
    sparsity: float

    def __post_init__(self) -> None:
        if not is_number(self.sparsity) or not 0.0 <= self.sparsity <= 0.99:
            raise ConfigError(f"prune.sparsity={self.sparsity} is outside [0, 0.99]")


@register(MagnitudePruneConfig, order=40, choices={"sparsity": Choice("sparsity", 0.0)},
          uniform={"sparse50": [{"global": True, "prune": {"sparsity": 0.5}}]})
class MagnitudePrune(Handler):
    def compute(self, weight: torch.Tensor, cfg: MagnitudePruneConfig) -> Mask:
        n = weight.numel()
        k = round(cfg.sparsity * n)
        keep = torch.ones(n, dtype=torch.bool)
        if k:
            # topk picks exactly k indices even when magnitudes tie, so sparsity is exact.
            drop = torch.topk(weight.detach().abs().flatten(), k, largest=False).indices
            keep[drop] = False
        return Mask(keep.view_as(weight), {"sparsity": cfg.sparsity})

    def lowering(self, state) -> dict | None:
        # No sparse or codebook kernel runs on these CPUs: the layer is exported dense.
        return {"note": "sparsity and sharing are not run faster"} if state.sparsity else None

    def keep(self, weight: torch.Tensor, state) -> Projection | None:
        if not state.sparsity:
            return None
        mask = weight.detach() != 0
        return lambda w: w * mask
