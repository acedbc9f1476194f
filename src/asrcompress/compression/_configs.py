"""The base of every method config, and the distillation (recovery) config.

Each method's own frozen config lives in its module (`_prune`, `_quant`, ...) and validates its
own ranges; layer-dependent checks (rank above min(in, out)) are done by its handler, which
knows the layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

SCHEDULES = ("constant", "cosine")


class ConfigError(ValueError):
    """A bad value in a method config; the message names the field."""


def is_number(x: object) -> bool:
    """int or float, not bool (YAML's `true` must not pass as 1)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass(frozen=True)
class MethodConfig:
    VERSION: ClassVar[int] = 1
    key: ClassVar[str] = ""


@dataclass(frozen=True)
class DistillConfig(MethodConfig):
    """Knowledge-distillation recovery: alpha * T^2 * KL + (1 - alpha) * CTC."""

    key: ClassVar[str] = "distill"
    temperature: float = 2.0
    alpha: float = 0.5
    steps: int = 300
    lr: float = 1e-4
    warmup: float = 0.0  # share of the steps the learning rate ramps up over, linearly from lr/warmup-steps
    schedule: str = "constant"  # after the warm-up: "constant", or "cosine" decay to 0 at the last step

    def __post_init__(self) -> None:
        if not is_number(self.temperature) or not 0.5 <= self.temperature <= 20:
            raise ConfigError(f"distill.temperature={self.temperature} is outside [0.5, 20]")
        if not is_number(self.alpha) or not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"distill.alpha={self.alpha} is outside [0, 1]")
        if not is_int(self.steps) or self.steps < 0:
            raise ConfigError(f"distill.steps={self.steps} must be a non-negative integer")
        if not is_number(self.lr) or not 0.0 < self.lr < 1.0:
            raise ConfigError(f"distill.lr={self.lr} is outside (0, 1)")
        if not is_number(self.warmup) or not 0.0 <= self.warmup <= 0.5:
            raise ConfigError(f"distill.warmup={self.warmup} is outside [0, 0.5]")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"distill.schedule={self.schedule!r} is not one of {', '.join(SCHEDULES)}")

    def lr_at(self, step: int, total: int | None = None) -> float:
        """The learning rate of 0-based `step` of a run of `total` steps (default: `steps`)."""
        total = total or self.steps
        warm = math.ceil(self.warmup * total)
        if step < warm:
            return self.lr * (step + 1) / warm
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
        return self.lr
