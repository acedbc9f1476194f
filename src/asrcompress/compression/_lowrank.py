"""Low-rank factorisation by truncated SVD."""

from __future__ import annotations

import torch

from ._configs import ConfigError, LowRankConfig
from ._layers import LayerInfo
from ._registry import Factors, Handler, register


def choose_rank(singular_values: torch.Tensor, cfg: LowRankConfig) -> int:
    full = singular_values.numel()
    if cfg.rank is not None:
        return cfg.rank
    if cfg.rank_fraction is not None:
        return max(1, min(full, round(cfg.rank_fraction * full)))
    energy = torch.cumsum(singular_values**2, 0) / (singular_values**2).sum()
    return int(torch.searchsorted(energy, torch.tensor(cfg.energy, dtype=energy.dtype) - 1e-9).item()) + 1


@register(LowRankConfig)
class LowRank(Handler):
    def not_applicable(self, layer: LayerInfo, modules: dict[str, torch.nn.Module]) -> str | None:
        module = modules[layer.module_name]
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
