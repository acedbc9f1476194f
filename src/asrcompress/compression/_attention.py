"""Self-attention that can hold fewer heads than its width implies.

nn.MultiheadAttention fixes head_dim = embed_dim / num_heads, so removing heads needs a
module of its own. Same maths and weight layout as nn.MultiheadAttention (packed in_proj,
sequence-first unless batch_first), with h' heads of the original head width d_h:
    in_proj  (3 h' d_h, d);  x (T, N, d) -> q, k, v (N, h', T, d_h)
    softmax(q k^T / sqrt(d_h)) v -> (T, N, h' d_h) -> out_proj (d, h' d_h) -> (T, N, d)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class HeadPrunedAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, head_dim: int, dropout: float = 0.0,
                 batch_first: bool = False) -> None:
        super().__init__()
        inner = num_heads * head_dim
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, head_dim
        self.dropout, self.batch_first = dropout, batch_first
        self.in_proj_weight = nn.Parameter(torch.zeros(3 * inner, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * inner))
        self.out_proj = nn.Linear(inner, embed_dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = False,
                attn_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        if need_weights:
            raise ValueError("HeadPrunedAttention does not return attention weights")
        if self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        t, n, _ = query.shape
        if query is key and key is value:  # self-attention: one packed MatMul, as deployed
            qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        else:
            qkv = tuple(F.linear(x, w, b) for x, w, b in zip(
                (query, key, value), self.in_proj_weight.chunk(3), self.in_proj_bias.chunk(3)))
        # (S, N, h' d_h) -> (N, h', S, d_h)
        q, k, v = (x.reshape(x.shape[0], n, self.num_heads, self.head_dim).permute(1, 2, 0, 3) for x in qkv)
        mask = None
        if key_padding_mask is not None:  # (N, S), True = padding -> (N, 1, 1, S), True = attend
            mask = ~key_padding_mask.bool()[:, None, None, :]
        if attn_mask is not None:
            extra = ~attn_mask.bool() if attn_mask.dtype == torch.bool else attn_mask
            mask = extra if mask is None else mask & extra
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        out = out.permute(2, 0, 1, 3).reshape(t, n, self.num_heads * self.head_dim)  # (T, N, h' d_h)
        out = self.out_proj(out)
        return (out.transpose(0, 1) if self.batch_first else out), None

    @classmethod
    def from_heads(cls, mha: nn.Module, keep: torch.Tensor) -> "HeadPrunedAttention":
        """A copy of `mha` (nn.MultiheadAttention or this class) holding only heads `keep`."""
        d_h = mha.head_dim
        if isinstance(mha, nn.MultiheadAttention) and not mha._qkv_same_embed_dim:
            raise ValueError("attention with separate q/k/v widths cannot be head-pruned")
        inner = mha.num_heads * d_h
        cols = (keep[:, None] * d_h + torch.arange(d_h)[None, :]).reshape(-1)  # kept head columns
        rows = torch.cat([cols + i * inner for i in range(3)])  # the same heads in q, k and v
        new = cls(mha.embed_dim, keep.numel(), d_h, float(mha.dropout), bool(mha.batch_first))
        with torch.no_grad():
            new.in_proj_weight.copy_(mha.in_proj_weight[rows])
            new.in_proj_bias.copy_(mha.in_proj_bias[rows])
            new.out_proj.weight.copy_(mha.out_proj.weight[:, cols])
            new.out_proj.bias.copy_(mha.out_proj.bias)
        return new.to(mha.in_proj_weight.dtype).train(mha.training)
