"""Sparsity-regularised fine-tuning: the penalty a layer adds to the recovery loss."""

from __future__ import annotations

import torch

from ._configs import SparsityRegConfig
from ._registry import Handler, register


@register(SparsityRegConfig)
class SparsityReg(Handler):
    def penalty(self, weight: torch.Tensor, cfg: SparsityRegConfig) -> torch.Tensor:
        """L1: strength * mean |w|. Group lasso: strength * mean over rows of ||row||_2 / sqrt(row size)."""
        if cfg.penalty == "l1":
            return cfg.strength * weight.abs().mean()
        w2d = weight.reshape(weight.shape[0], -1)
        return cfg.strength * (w2d.norm(dim=1) / w2d.shape[1] ** 0.5).mean()
