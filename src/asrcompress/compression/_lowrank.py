"""Low-rank factorisation by truncated SVD."""

from __future__ import annotations

import torch

from dataclasses import dataclass
from typing import ClassVar

from ._configs import ConfigError, MethodConfig, is_int, is_number
from ._layers import LayerInfo
from ._registry import Choice, Factors, Handler, register


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
        if self.rank is not None and (not is_int(self.rank) or self.rank < 1):
            raise ConfigError(f"lowrank.rank={self.rank} must be a positive integer")
        if self.rank_fraction is not None and (not is_number(self.rank_fraction)
                                               or not 0.0 < self.rank_fraction <= 1.0):
            raise ConfigError(f"lowrank.rank_fraction={self.rank_fraction} is outside (0, 1]")
        if self.energy is not None and (not is_number(self.energy) or not 0.0 < self.energy <= 1.0):
            raise ConfigError(f"lowrank.energy={self.energy} is outside (0, 1]")


def choose_rank(singular_values: torch.Tensor, cfg: LowRankConfig) -> int:
    full = singular_values.numel()
    if cfg.rank is not None:
        return cfg.rank
    if cfg.rank_fraction is not None:
        return max(1, min(full, round(cfg.rank_fraction * full)))
    energy = torch.cumsum(singular_values**2, 0) / (singular_values**2).sum()
    return int(torch.searchsorted(energy, torch.tensor(cfg.energy, dtype=energy.dtype) - 1e-9).item()) + 1


@register(LowRankConfig, order=20, choices={"rank_fraction": Choice("rank_fraction", None)},
          uniform={"lowrank50": [{"type": "Linear", "lowrank": {"rank_fraction": 0.5}}]})
class LowRank(Handler):
    replaces_layer = True

    def not_applicable(self, layer: LayerInfo, model: torch.nn.Module) -> str | None:
        module = model.get_submodule(layer.module_name)
        if isinstance(module, torch.nn.modules.linear.NonDynamicallyQuantizableLinear):
            # nn.MultiheadAttention reads out_proj.weight directly, so it cannot be split.
            return "nn.MultiheadAttention uses its out_proj weight directly"
        if layer.kind == "Linear":
            return None
        if layer.kind == "Conv1d" and module.kernel_size == (1,) and module.groups == 1:
            return None
        return f"{layer.kind} with this shape cannot be split into two smaller layers"

    def check(self, layer: LayerInfo, cfg: LowRankConfig) -> None:
        full = min(layer.out_features, layer.in_features)
        if cfg.rank is not None and cfg.rank > full:
            raise ConfigError(f"lowrank.rank={cfg.rank} is above min(in, out)={full} of layer {layer.name}")

    def compute(self, weight: torch.Tensor, cfg: LowRankConfig) -> Factors:
        # (out, in) = U S Vh; keep r: second = U_r sqrt(S_r) (out, r), first = sqrt(S_r) Vh_r (r, in)
        w2d = weight.detach().reshape(weight.shape[0], -1).double()
        u, s, vh = torch.linalg.svd(w2d, full_matrices=False)
        r = choose_rank(s, cfg)
        root = s[:r].sqrt()
        first = (root[:, None] * vh[:r]).to(weight.dtype)
        second = (u[:, :r] * root[None, :]).to(weight.dtype)
        return Factors(first, second)
