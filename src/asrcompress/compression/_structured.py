"""Structured pruning: physically remove FFN neurons, attention heads and conv-module channels.

A block is found from its first ("producer") layer; the rule names that layer. The model's
family adapter declares its blocks (`models.BlockSpec`). Shapes:
    FFN:  Linear(d, F) -> act -> Linear(F, d)
         becomes Linear(d, F') -> act -> Linear(F', d),           F' = F - round(ratio * F)
    Conformer conv module:  Conv1d(d, 2C, 1) -> GLU -> depthwise Conv1d(C, C, k, groups=C)
         -> norm(C) -> act -> Conv1d(C, d, 1)   becomes the same with C' = C - round(ratio * C)
    Self-attention (named by its packed `<attn>.in_proj`), h heads of width d_h = d / h:
         in_proj (3 h d_h, d), out_proj (d, h d_h)  becomes a HeadPrunedAttention with
         in_proj (3 h' d_h, d), out_proj (d, h' d_h),             h' = h - round(ratio * h)
    Self-attention with separate projections (Hugging Face; named by its `q_proj`), kind "heads":
         q/k/v_proj (h d_h, d) -> (h' d_h, d) by the kept heads' rows, out_proj (d, h d_h) -> (d, h' d_h)
         by the same columns, and the module's num_heads = h'. The attention reshapes to
         (N, T, -1, d_h), so it runs on h' heads: removing a head equals zeroing its out_proj columns.
    Conv subsampling front end: Conv2d(1, c1, 3, 2) -> relu -> Conv2d(c1, c2, 3, 2) -> relu
         -> Linear(c2 F', d) over (channel, frequency) pairs, F' the subsampled mel bins.
         Rule on conv1: Conv2d(1, c1', 3, 2), conv2 takes c1' inputs;  c1' = c1 - round(ratio * c1)
         Rule on conv2: Conv2d(c1, c2', 3, 2), Linear(c2' F', d);       c2' = c2 - round(ratio * c2)
         The front end is ~40% of the fp32 model's time at 8 s, so this is where latency is.
    Conv feature encoder (Hugging Face; kind "conv1d"), channels c of one conv layer:
         Conv1d(., c, k, s) -> [norm(c)] -> act -> Conv1d(c, ., k', s') or, after the last layer,
         LayerNorm(c) -> Linear(c, d)   becomes the same with c' = c - round(ratio * c). A per-channel
         GroupNorm keeps its maths exactly; a LayerNorm over channels then normalises over c' of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..models import find_adapter
from ._attention import HeadPrunedAttention
from ._configs import ConfigError, MethodConfig, is_number
from ._layers import LayerInfo
from ._registry import Choice, Handler, Units, register


@dataclass(frozen=True)
class StructuredPruneConfig(MethodConfig):
    """Remove whole FFN neurons / attention heads / conv channels; `ratio` of them, least important first.

    criterion: l1 / l2 norm of a unit's producer weights, or taylor: |sum of w * dL/dw| over them
    (first-order Taylor estimate of the loss change when the unit is removed; needs training data)."""

    key: ClassVar[str] = "structured"
    ratio: float
    criterion: str = "l2"

    def __post_init__(self) -> None:
        if not is_number(self.ratio) or not 0.0 <= self.ratio <= 0.9:
            raise ConfigError(f"structured.ratio={self.ratio} is outside [0, 0.9]")
        if self.criterion not in ("l1", "l2", "taylor"):
            raise ConfigError(f"structured.criterion={self.criterion!r} is not one of l1, l2, taylor")


@dataclass
class Block:
    kind: str  # "ffn", "conv", "attn", "heads", "conv2d" (a Conv2d feeding a Conv2d or a Linear), "conv1d"
    parent: nn.Module
    names: dict[str, str]  # role -> attribute path under parent


def find_block(model: nn.Module, layer: LayerInfo) -> Block | None:
    """The block whose first layer is `layer`, among those the model's family adapter declares
    (`models.AcousticModel.blocks`); None for a layer that starts no block, or a model of no family."""
    adapter = find_adapter(model)
    if adapter is None:
        return None
    for spec in adapter.blocks(model):
        if spec.first == layer.name:
            parent = model.get_submodule(spec.parent) if spec.parent else model
            return Block(spec.kind, parent, dict(spec.roles))
    return None


def width(block: Block) -> int:
    if block.kind == "attn":
        return block.parent.get_submodule(block.names["attn"]).num_heads
    if block.kind == "heads":
        return block.parent.num_heads
    first = block.parent.get_submodule(block.names["first"])
    return first.weight.shape[0] // (2 if block.kind == "conv" else 1)


def _score_rows(w: torch.Tensor, criterion: str) -> torch.Tensor:
    """(units, n) producer weights (each row one unit) -> (units,) scores."""
    if criterion == "taylor":
        return w.sum(dim=1).abs()  # rows hold w * dL/dw here
    return w.norm(p=1 if criterion == "l1" else 2, dim=1)


def _weights(param: torch.Tensor, criterion: str) -> torch.Tensor:
    if criterion != "taylor":
        return param.detach()
    if param.grad is None:
        raise ValueError("the taylor criterion needs gradients: run compress_model with `gradients`")
    return (param * param.grad).detach()


def importance(block: Block, criterion: str) -> torch.Tensor:
    """Per-unit score over the unit's producer rows (both GLU halves for conv; a head's q, k and v
    rows for attention): their l1/l2 norm, or for taylor |sum of w * dL/dw|."""
    if block.kind == "attn":
        mha = block.parent.get_submodule(block.names["attn"])
        # (3 h d_h, d) -> (3, h, d_h * d) -> (h, 3 d_h d)
        w = _weights(mha.in_proj_weight, criterion).reshape(3, mha.num_heads, -1).transpose(0, 1)
        return _score_rows(w.reshape(mha.num_heads, -1), criterion)
    if block.kind == "heads":
        h = block.parent.num_heads  # q, k, v each (h d_h, d) -> (h, d_h d); a head's three row sets
        w = torch.cat([_weights(block.parent.get_submodule(block.names[r]).weight, criterion).reshape(h, -1)
                       for r in ("first", "k", "v")], dim=1)
        return _score_rows(w, criterion)
    w = _weights(block.parent.get_submodule(block.names["first"]).weight, criterion)
    w2d = w.reshape(w.shape[0], -1)
    norms = _score_rows(w2d, criterion)
    if block.kind == "conv":
        c = w2d.shape[0] // 2
        norms = norms[:c] + norms[c:]
    return norms


def _slice_linear(m: nn.Linear, rows: torch.Tensor | None, cols: torch.Tensor | None) -> nn.Linear:
    w = m.weight.detach()
    w = w[rows] if rows is not None else w
    w = w[:, cols] if cols is not None else w
    new = nn.Linear(w.shape[1], w.shape[0], bias=m.bias is not None)
    new.weight.data.copy_(w)
    if m.bias is not None:
        new.bias.data.copy_(m.bias.detach()[rows] if rows is not None else m.bias.detach())
    return new


def _slice_conv(m: nn.Conv1d, rows: torch.Tensor | None, cols: torch.Tensor | None, groups: int = 1) -> nn.Conv1d:
    w = m.weight.detach()
    w = w[rows] if rows is not None else w
    w = w[:, cols] if cols is not None else w
    new = nn.Conv1d(w.shape[1] * groups, w.shape[0], m.kernel_size, stride=m.stride, padding=m.padding,
                    groups=groups, bias=m.bias is not None)
    new.weight.data.copy_(w)
    if m.bias is not None:
        new.bias.data.copy_(m.bias.detach()[rows] if rows is not None else m.bias.detach())
    return new


def _slice_conv2d(m: nn.Conv2d, rows: torch.Tensor | None, cols: torch.Tensor | None) -> nn.Conv2d:
    w = m.weight.detach()
    w = w[rows] if rows is not None else w
    w = w[:, cols] if cols is not None else w
    new = nn.Conv2d(w.shape[1], w.shape[0], m.kernel_size, stride=m.stride, padding=m.padding,
                    bias=m.bias is not None)
    new.weight.data.copy_(w)
    if m.weight.grad is not None:  # conv2 is sliced by conv1's rule before its own rule scores it
        g = m.weight.grad
        g = g[rows] if rows is not None else g
        new.weight.grad = (g[:, cols] if cols is not None else g).clone()
    if m.bias is not None:
        new.bias.data.copy_(m.bias.detach()[rows] if rows is not None else m.bias.detach())
    return new


def _slice_norm(m: nn.Module, keep: torch.Tensor) -> nn.Module:
    if isinstance(m, nn.BatchNorm1d):
        new = nn.BatchNorm1d(keep.numel(), eps=m.eps, momentum=m.momentum)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(new, name).data.copy_(getattr(m, name).detach()[keep])
        new.num_batches_tracked.copy_(m.num_batches_tracked)
        return new
    if isinstance(m, nn.GroupNorm) and m.num_groups in (1, m.num_channels):  # one group, or one per channel
        new = nn.GroupNorm(1 if m.num_groups == 1 else keep.numel(), keep.numel(), eps=m.eps, affine=m.affine)
        if m.affine:
            new.weight.data.copy_(m.weight.detach()[keep])
            new.bias.data.copy_(m.bias.detach()[keep])
        return new
    if isinstance(m, nn.LayerNorm) and len(m.normalized_shape) == 1:
        new = nn.LayerNorm(keep.numel(), eps=m.eps, elementwise_affine=m.elementwise_affine, bias=m.bias is not None)
        if m.weight is not None:
            new.weight.data.copy_(m.weight.detach()[keep])
        if m.bias is not None:
            new.bias.data.copy_(m.bias.detach()[keep])
        return new
    raise ValueError(f"cannot prune channels of {type(m).__name__}")


def shrink(block: Block, keep: torch.Tensor) -> None:
    """Replace the block's modules with ones holding only the `keep` units (sorted indices)."""
    get = block.parent.get_submodule
    n = block.names
    mode = block.parent.training
    try:
        _shrink(block, keep, get, n)
    finally:
        block.parent.train(mode)  # new modules start in training mode; keep the block's


def _shrink(block: Block, keep: torch.Tensor, get, n: dict[str, str]) -> None:
    if block.kind == "attn":
        setattr(block.parent, n["attn"], HeadPrunedAttention.from_heads(get(n["attn"]), keep))
        return
    if block.kind == "heads":
        d_h = block.parent.head_dim
        cols = (keep[:, None] * d_h + torch.arange(d_h)[None, :]).reshape(-1)  # the kept heads' features
        for role in ("first", "k", "v"):
            setattr(block.parent, n[role], _slice_linear(get(n[role]), cols, None))
        setattr(block.parent, n["second"], _slice_linear(get(n["second"]), None, cols))
        block.parent.num_heads = keep.numel()
        return
    if block.kind == "conv2d":
        first, second = get(n["first"]), get(n["second"])
        setattr(block.parent, n["first"], _slice_conv2d(first, keep, None))
        if isinstance(second, nn.Conv2d):
            setattr(block.parent, n["second"], _slice_conv2d(second, None, keep))
            return
        # proj's inputs are (channel, frequency) pairs, channel-major: (c2 F') -> (c2' F')
        f = second.in_features // first.out_channels
        cols = (keep[:, None] * f + torch.arange(f)[None, :]).reshape(-1)
        setattr(block.parent, n["second"], _slice_linear(second, None, cols))
        return
    if block.kind == "conv1d":
        first, second = get(n["first"]), get(n["second"])
        setattr_path(block.parent, n["first"], _slice_conv(first, keep, None, groups=1))
        for role in ("norm", "second_norm"):
            if role in n:
                setattr_path(block.parent, n[role], _slice_norm(get(n[role]), keep))
        sliced = (_slice_conv(second, None, keep) if isinstance(second, nn.Conv1d)
                  else _slice_linear(second, None, keep))
        setattr_path(block.parent, n["second"], sliced)
        return
    if block.kind == "ffn":
        setattr(block.parent, n["first"], _slice_linear(get(n["first"]), keep, None))
        setattr(block.parent, n["second"], _slice_linear(get(n["second"]), None, keep))
        return
    c = width(block)
    both = torch.cat([keep, keep + c])  # GLU: value half and gate half
    setattr(block.parent, n["first"], _slice_conv(get(n["first"]), both, None))
    setattr(block.parent, n["depthwise"], _slice_conv(get(n["depthwise"]), keep, None, groups=keep.numel()))
    setattr(block.parent, n["norm"], _slice_norm(get(n["norm"]), keep))
    setattr(block.parent, n["second"], _slice_conv(get(n["second"]), None, keep))


def setattr_path(parent: nn.Module, path: str, module: nn.Module) -> None:
    """setattr for a dotted path under `parent` (a role that lies deeper than one attribute)."""
    owner, _, name = path.rpartition(".")
    setattr(parent.get_submodule(owner) if owner else parent, name, module)


def keep_count(units: int, ratio: float) -> int:
    return max(1, units - round(ratio * units))


# The bench's hand policy names the Conformer's blocks by their first layers.
STRUCTURED25 = [{"pattern": p, "structured": {"ratio": 0.25}} for p in (
    "encoder.*.ffn*.sequential.1", "encoder.*.self_attn.in_proj", "encoder.*.conv_module.sequential.0",
    "subsampling.conv1", "subsampling.conv2")]


@register(StructuredPruneConfig, order=10, choices={"structured": Choice("ratio", 0.0)},
          uniform={"structured25": STRUCTURED25})
class StructuredPrune(Handler):
    """Chooses the units to keep; `_apply` does the surgery with `shrink`."""

    structural = True

    def needs_gradients(self, cfg: StructuredPruneConfig) -> str | None:
        return "structured.criterion taylor" if cfg.criterion == "taylor" else None

    def not_applicable(self, layer: LayerInfo, model: nn.Module) -> str | None:
        if find_block(model, layer) is None:
            return "not the first layer of a feed-forward, attention, convolution or subsampling block"
        return None

    def compute_block(self, block: Block, cfg: StructuredPruneConfig) -> Units:
        scores = importance(block, cfg.criterion)
        k = keep_count(scores.numel(), cfg.ratio)
        return Units(torch.topk(scores, k).indices.sort().values)
