"""Unstructured magnitude pruning."""

from __future__ import annotations

import torch

from ._configs import MagnitudePruneConfig
from ._registry import Handler, Mask, register


@register(MagnitudePruneConfig)
class MagnitudePrune(Handler):
    def compute(self, weight: torch.Tensor, cfg: MagnitudePruneConfig) -> Mask:
        n = weight.numel()
        k = round(cfg.sparsity * n)
        keep = torch.ones(n, dtype=torch.bool)
        if k:
            # topk picks exactly k indices even when magnitudes tie, so sparsity is exact.
            drop = torch.topk(weight.detach().abs().flatten(), k, largest=False).indices
            keep[drop] = False
        return Mask(keep.view_as(weight))
