"""Discover the compressible weight tensors of any PyTorch acoustic model.

A "layer" is one 2-D-viewable weight: a Linear/Conv weight (named by its module), the packed
q/k/v projection of nn.MultiheadAttention (`<module>.in_proj`), or an LSTM gate matrix
(`<module>.weight_ih_l0`). Modules under a parametrization (weight norm) are skipped: their
weight is derived, not stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._attention import HeadPrunedAttention

KINDS = ("Linear", "Conv1d", "Conv2d", "MultiheadAttention", "LSTM")


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str
    module_name: str
    param_name: str
    shape: tuple[int, ...]

    @property
    def params(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def out_features(self) -> int:
        return self.shape[0]

    @property
    def in_features(self) -> int:
        """Columns of the (out, in * kernel) matrix view used by every method."""
        return self.params // self.shape[0]


class Factored(nn.Module):
    """A layer stored as several weights (its `factors()`, run in that order; the last one holds
    the bias) that stands for one plain layer: the methods, the size count and the export treat
    it as a layer of kind `kind` and weight shape `shape`, whose stored tensors are its factors'."""

    kind: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def factors(self) -> list[nn.Module]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for f in self.factors():
            x = f(x)
        return x


class _LowRank(Factored):
    """A layer as two factors, `first` (r, in) and `second` (out, r)."""

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.second.weight.shape[0], self.first.weight.shape[1])

    def factors(self) -> list[nn.Module]:
        return [self.first, self.second]


class LowRankLinear(_LowRank):
    """(N, *, in) -> (N, *, r) -> (N, *, out)."""

    kind = "Linear"

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool) -> None:
        super().__init__()
        self.first = nn.Linear(in_features, rank, bias=False)
        self.second = nn.Linear(rank, out_features, bias=bias)


class LowRankConv1d(_LowRank):
    """Pointwise conv split in two: (N, in, T) -> (N, r, T) -> (N, out, T)."""

    kind = "Conv1d"

    def __init__(self, in_channels: int, out_channels: int, rank: int, bias: bool) -> None:
        super().__init__()
        self.first = nn.Conv1d(in_channels, rank, 1, bias=False)
        self.second = nn.Conv1d(rank, out_channels, 1, bias=bias)


class TuckerConv2d(Factored):
    """A 2-D (or 1-D) conv as Tucker-2 factors (Kim et al., ICLR 2016): 1x1 reduce to r_in
    channels, the k x k core (the original stride and padding) to r_out, 1x1 expand.
    (N, C_in, H, W) -> (N, r_in, H, W) -> (N, r_out, H', W') -> (N, C_out, H', W');
    a Conv1d the same over (N, C, T)."""

    kind = "Conv2d"

    def __init__(self, conv: nn.Conv2d | nn.Conv1d, r_out: int, r_in: int) -> None:
        super().__init__()
        conv_cls = type(conv) if isinstance(conv, nn.Conv1d) else nn.Conv2d
        self.kind = "Conv1d" if conv_cls is nn.Conv1d else "Conv2d"
        self.reduce = conv_cls(conv.in_channels, r_in, 1, bias=False)
        self.core = conv_cls(r_in, r_out, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                             dilation=conv.dilation, bias=False)
        self.expand = conv_cls(r_out, conv.out_channels, 1, bias=conv.bias is not None)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.expand.out_channels, self.reduce.in_channels, *self.core.kernel_size)

    def factors(self) -> list[nn.Module]:
        return [self.reduce, self.core, self.expand]


class SeparableConv2d(Factored):
    """A 2-D conv as a depthwise k x k conv with `multiplier` filters per input channel (the
    original stride and padding) and a 1x1 pointwise conv:
    (N, C_in, H, W) -> (N, m C_in, H', W') -> (N, C_out, H', W').
    Depthwise output channel i m + j is input channel i's j-th filter (PyTorch's group order)."""

    kind = "Conv2d"

    def __init__(self, conv: nn.Conv2d, multiplier: int) -> None:
        super().__init__()
        c_in = conv.in_channels
        self.depthwise = nn.Conv2d(c_in, multiplier * c_in, conv.kernel_size, stride=conv.stride,
                                   padding=conv.padding, dilation=conv.dilation, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(multiplier * c_in, conv.out_channels, 1, bias=conv.bias is not None)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.pointwise.out_channels, self.depthwise.in_channels, *self.depthwise.kernel_size)

    def factors(self) -> list[nn.Module]:
        return [self.depthwise, self.pointwise]


def factor_modules(module: nn.Module) -> list[nn.Module] | None:
    """The modules whose weights a factored layer stores (None for a plain layer)."""
    return module.factors() if isinstance(module, Factored) else None


def _kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.Linear):
        return "Linear"
    if isinstance(module, nn.Conv1d):
        return "Conv1d"
    if isinstance(module, nn.Conv2d):
        return "Conv2d"
    if isinstance(module, (nn.MultiheadAttention, HeadPrunedAttention)):
        return "MultiheadAttention"
    if isinstance(module, nn.LSTM):
        return "LSTM"
    return None


def discover_layers(model: nn.Module) -> list[LayerInfo]:
    layers = []
    factored: list[str] = []
    for mname, module in model.named_modules():
        if any(mname.startswith(f + ".") for f in factored):
            continue  # the factors of a factored layer are counted as that layer
        if isinstance(module, Factored):  # counted as the layer it stands for
            factored.append(mname)
            layers.append(LayerInfo(mname, module.kind, mname, "weight", module.shape))
            continue
        kind = _kind(module)
        if kind is None or torch.nn.utils.parametrize.is_parametrized(module):
            continue
        if kind == "MultiheadAttention":
            if module.in_proj_weight is not None:
                layers.append(LayerInfo(f"{mname}.in_proj", kind, mname, "in_proj_weight",
                                        tuple(module.in_proj_weight.shape)))
            continue  # out_proj is an nn.Linear and is found on its own
        if kind == "LSTM":
            for pname, p in module.named_parameters(recurse=False):
                if pname.startswith("weight_"):
                    layers.append(LayerInfo(f"{mname}.{pname}", kind, mname, pname, tuple(p.shape)))
            continue
        layers.append(LayerInfo(mname, kind, mname, "weight", tuple(module.weight.shape)))
    return layers


def get_weight(model: nn.Module, layer: LayerInfo) -> torch.nn.Parameter:
    return getattr(model.get_submodule(layer.module_name), layer.param_name)
