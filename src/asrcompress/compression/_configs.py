"""One frozen, versioned config dataclass per compression method.

Each class validates its own ranges; layer-dependent checks (rank above min(in, out)) are
done by its handler, which knows the layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

QUANT_BITS = (2, 3, 4, 5, 6, 8)


class ConfigError(ValueError):
    """A bad value in a method config; the message names the field."""


@dataclass(frozen=True)
class MethodConfig:
    VERSION: ClassVar[int] = 1
    key: ClassVar[str] = ""


@dataclass(frozen=True)
class StructuredPruneConfig(MethodConfig):
    """Remove whole FFN neurons / attention heads / conv channels; `ratio` of them, least important first.

    criterion: l1 / l2 norm of a unit's producer weights, or taylor: |sum of w * dL/dw| over them
    (first-order Taylor estimate of the loss change when the unit is removed; needs training data)."""

    key: ClassVar[str] = "structured"
    ratio: float
    criterion: str = "l2"

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 0.9:
            raise ConfigError(f"structured.ratio={self.ratio} is outside [0, 0.9]")
        if self.criterion not in ("l1", "l2", "taylor"):
            raise ConfigError(f"structured.criterion={self.criterion!r} is not one of l1, l2, taylor")


@dataclass(frozen=True)
class LowRankConfig(MethodConfig):
    """Truncated SVD to an absolute rank, a fraction of the full rank, or an energy share."""

    key: ClassVar[str] = "lowrank"
    rank: int | None = None
    rank_fraction: float | None = None
    energy: float | None = None

    def __post_init__(self) -> None:
        given = [f for f in ("rank", "rank_fraction", "energy") if getattr(self, f) is not None]
        if len(given) != 1:
            raise ConfigError(f"lowrank needs exactly one of rank, rank_fraction, energy (got {given or 'none'})")
        if self.rank is not None and (not isinstance(self.rank, int) or self.rank < 1):
            raise ConfigError(f"lowrank.rank={self.rank} must be a positive integer")
        if self.rank_fraction is not None and not 0.0 < self.rank_fraction <= 1.0:
            raise ConfigError(f"lowrank.rank_fraction={self.rank_fraction} is outside (0, 1]")
        if self.energy is not None and not 0.0 < self.energy <= 1.0:
            raise ConfigError(f"lowrank.energy={self.energy} is outside (0, 1]")


@dataclass(frozen=True)
class MagnitudePruneConfig(MethodConfig):
    """Zero the smallest-magnitude weights; exactly round(sparsity * n) of them."""

    key: ClassVar[str] = "prune"
    sparsity: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity <= 0.99:
            raise ConfigError(f"prune.sparsity={self.sparsity} is outside [0, 0.99]")


@dataclass(frozen=True)
class ClusterConfig(MethodConfig):
    """Weight sharing: k-means over the layer's (non-zero) weights to `clusters` values."""

    key: ClassVar[str] = "cluster"
    clusters: int

    def __post_init__(self) -> None:
        if not isinstance(self.clusters, int) or not 2 <= self.clusters <= 4096:
            raise ConfigError(f"cluster.clusters={self.clusters} must be an integer in [2, 4096]")


@dataclass(frozen=True)
class QuantConfig(MethodConfig):
    """Weight quantization: `linear` (symmetric, per output channel) or `log` (sign + exponent)."""

    key: ClassVar[str] = "quant"
    bits: int
    kind: str = "linear"

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "log"):
            raise ConfigError(f"quant.kind={self.kind!r} is not one of linear, log")
        if self.bits not in QUANT_BITS:
            raise ConfigError(f"quant.bits={self.bits} is not one of {list(QUANT_BITS)}")


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
        if not 0.0 < self.strength <= 10.0:
            raise ConfigError(f"sparsity_reg.strength={self.strength} is outside (0, 10]")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"sparsity_reg.steps={self.steps} must be a positive integer")


@dataclass(frozen=True)
class DistillConfig(MethodConfig):
    """Knowledge-distillation recovery: alpha * T^2 * KL + (1 - alpha) * CTC."""

    key: ClassVar[str] = "distill"
    temperature: float = 2.0
    alpha: float = 0.5
    steps: int = 300
    lr: float = 1e-4

    def __post_init__(self) -> None:
        if not 0.5 <= self.temperature <= 20:
            raise ConfigError(f"distill.temperature={self.temperature} is outside [0.5, 20]")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"distill.alpha={self.alpha} is outside [0, 1]")
        if not isinstance(self.steps, int) or self.steps < 0:
            raise ConfigError(f"distill.steps={self.steps} must be a non-negative integer")
        if not 0.0 < self.lr < 1.0:
            raise ConfigError(f"distill.lr={self.lr} is outside (0, 1)")


# Application order (documented in docs/compression.md): shapes first, then values.
SHAPE_METHODS: tuple[type[MethodConfig], ...] = (StructuredPruneConfig, LowRankConfig)
VALUE_METHODS: tuple[type[MethodConfig], ...] = (MagnitudePruneConfig, ClusterConfig, QuantConfig)
LAYER_METHODS = SHAPE_METHODS + VALUE_METHODS
# Regularisation trains (it needs data) between the shape methods and the value methods.
TRAINING_METHODS: tuple[type[MethodConfig], ...] = (SparsityRegConfig,)
BY_KEY: dict[str, type[MethodConfig]] = {c.key: c for c in LAYER_METHODS + TRAINING_METHODS}
