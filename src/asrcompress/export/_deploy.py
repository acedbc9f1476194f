"""The graph a deployment runs: one utterance, the model's input in, log-probabilities out.

Rewrites that keep the maths but give ONNX the kernels a phone runs fast:
  * every nn.MultiheadAttention becomes a HeadPrunedAttention holding all heads: one packed
    q/k/v MatMul and no reshapes with the time length baked in;
  * pointwise Conv1d (kernel 1) becomes a MatMul over channels, so its weights can use the
    int8 / 4-bit MatMul kernels (ONNX Runtime's int8 Conv was slower than fp32 here).
Padding masks are dropped: a single utterance has none.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..compression import HeadPrunedAttention
from ..models import adapter_for


class PointwiseLinear(nn.Module):
    """Conv1d(C_in, C_out, 1) as a MatMul: (N, C_in, T) -> (N, T, C_in) @ W^T -> (N, C_out, T)."""

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach()[:, :, 0].clone())  # (C_out, C_in)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.transpose(1, 2), self.weight, self.bias).transpose(1, 2)


def _is_pointwise(m: nn.Module) -> bool:
    return (isinstance(m, nn.Conv1d) and m.kernel_size == (1,) and m.stride == (1,)
            and m.padding == (0,) and m.groups == 1 and m.dilation == (1,))


def _replace(model: nn.Module) -> None:
    for name, child in list(model.named_children()):
        if isinstance(child, nn.MultiheadAttention):
            setattr(model, name, HeadPrunedAttention.from_heads(child, torch.arange(child.num_heads)))
        elif _is_pointwise(child):
            setattr(model, name, PointwiseLinear(child))
        else:
            _replace(child)


class DeployModel(nn.Module):
    """The model family's single-utterance graph (`AcousticModel.deploy`: the FeatureSpec's
    input -> (1, T', V) log-probabilities), on a copy of the model, rewritten for fast kernels."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.net = copy.deepcopy(adapter_for(model).deploy(model)).eval()
        _replace(self.net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
