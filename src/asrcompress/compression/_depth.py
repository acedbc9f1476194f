"""Depth pruning: drop whole residual blocks of the encoder (a model-scope method: a policy's
top-level `depth` field, applied before any per-layer rule).

    depth: {blocks_kept: 6}          # keep 6 blocks: drop, one at a time, the block whose
                                     # removal changes the output least (KL on calibration audio)
    depth: {drop: [2, 5]}            # drop these blocks (indices of the family's block list)

A dropped block is replaced by its family's bypass (`AcousticModel.bypass`), which passes the
residual stream through unchanged, so dropping a block is exactly bypassing it, the other blocks
keep their names, and the exported graph has no node of it. Shapes: (T', N, d) -> (T', N, d).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ._configs import ConfigError, MethodConfig, is_int
from ._registry import Handler, register


@dataclass(frozen=True)
class DepthConfig(MethodConfig):
    """Drop whole encoder blocks: `blocks_kept` (the least important first, by KL) or `drop` (indices)."""

    key: ClassVar[str] = "depth"
    blocks_kept: int | None = None
    drop: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if (self.blocks_kept is None) == (self.drop is None):
            raise ConfigError("depth needs exactly one of blocks_kept, drop")
        if self.blocks_kept is not None and (not is_int(self.blocks_kept) or self.blocks_kept < 1):
            raise ConfigError(f"depth.blocks_kept={self.blocks_kept} must be a positive integer")
        if self.drop is not None:
            if not isinstance(self.drop, (list, tuple)) or not self.drop or not all(is_int(i) and i >= 0 for i in self.drop):
                raise ConfigError(f"depth.drop={self.drop} must be a non-empty list of block indices")
            object.__setattr__(self, "drop", tuple(sorted(set(self.drop))))


def _set_module(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def kl(teacher: list[torch.Tensor], student: list[torch.Tensor]) -> float:
    """Mean over frames of KL(teacher || student), log-probabilities (T', V) per utterance."""
    total = frames = 0.0
    for t, s in zip(teacher, student):
        n = min(t.shape[0], s.shape[0])
        total += float((t[:n].exp() * (t[:n] - s[:n])).sum())
        frames += n
    return total / max(frames, 1)


@register(DepthConfig, order=5, scope="model", example={"blocks_kept": 6})
class DepthPrune(Handler):
    structural = True

    def needs_calibration(self, cfg: DepthConfig) -> str | None:
        return "depth.blocks_kept (blocks ranked by KL)" if cfg.blocks_kept is not None else None

    def plan_model(self, model: nn.Module, cfg: DepthConfig, calibration) -> dict:
        from ..models import adapter_for

        adapter = adapter_for(model)
        blocks = adapter.depth_blocks(model)
        if cfg.drop is not None:
            bad = [i for i in cfg.drop if i >= len(blocks)]
            if bad:
                raise ConfigError(f"depth.drop={list(cfg.drop)}: block {bad[0]} does not exist "
                                  f"({len(blocks)} blocks)")
            return {"bypassed": [blocks[i] for i in cfg.drop]}
        if cfg.blocks_kept >= len(blocks):
            raise ConfigError(f"depth.blocks_kept={cfg.blocks_kept} keeps every one of the {len(blocks)} blocks")
        teacher = calibration.log_probs(model)
        bypassed, scores = [], {}
        while len(blocks) - len(bypassed) > cfg.blocks_kept:  # greedy: the least harmful drop, then again
            best = None
            for path in (b for b in blocks if b not in bypassed):
                original = model.get_submodule(path)
                adapter.bypass(model, path)
                damage = kl(teacher, calibration.log_probs(model))
                _set_module(model, path, original)
                if best is None or damage < best[1]:
                    best = (path, damage)
            bypassed.append(best[0])
            scores[best[0]] = best[1]
            adapter.bypass(model, best[0])  # the next round ranks the blocks left, without it
        return {"bypassed": bypassed, "kl_after_each_drop": scores}

    def apply_model(self, model: nn.Module, record: dict) -> None:
        from ..models import adapter_for

        adapter = adapter_for(model)
        for path in record["bypassed"]:
            adapter.bypass(model, path)
