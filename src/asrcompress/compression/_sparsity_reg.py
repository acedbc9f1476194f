"""Sparsity-regularised fine-tuning: its config, and the penalty a layer adds to the recovery loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ._configs import ConfigError, MethodConfig, is_int, is_number
from ._registry import Handler, register


@dataclass(frozen=True)
class SparsityRegConfig(MethodConfig):
    """Sparsity-regularised fine-tuning before pruning: an L1 (per weight) or group-lasso
    (per output row) penalty, added to the distillation loss for `steps` steps, that drives
    weights or whole rows toward zero so the pruning that follows removes less signal."""

    key: ClassVar[str] = "sparsity_reg"
    penalty: str = "l1"
    strength: float = 1e-3
    steps: int = 100

    def __post_init__(self) -> None:
        if self.penalty not in ("l1", "group_lasso"):
            raise ConfigError(f"sparsity_reg.penalty={self.penalty!r} is not one of l1, group_lasso")
        if not is_number(self.strength) or not 0.0 < self.strength <= 10.0:
            raise ConfigError(f"sparsity_reg.strength={self.strength} is outside (0, 10]")
        if not is_int(self.steps) or self.steps < 1:
            raise ConfigError(f"sparsity_reg.steps={self.steps} must be a positive integer")


# Trains between the shape methods (order 10, 20) and the value methods (40 on).
@register(SparsityRegConfig, order=30, training=True)
class SparsityReg(Handler):
    def penalty(self, weight: torch.Tensor, cfg: SparsityRegConfig) -> torch.Tensor:
        """L1: strength * mean |w|. Group lasso: strength * mean over rows of ||row||_2 / sqrt(row size)."""
        if cfg.penalty == "l1":
            return cfg.strength * weight.abs().mean()
        w2d = weight.reshape(weight.shape[0], -1)
        return cfg.strength * (w2d.norm(dim=1) / w2d.shape[1] ** 0.5).mean()
