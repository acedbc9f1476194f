"""GPTQ rounding (Frantar et al., arXiv 2210.17323) and the calibration statistics it needs.

For one layer y = W x with weights (out, in) and calibration inputs X (in, n), GPTQ quantizes
W column by column and spreads each column's rounding error over the columns not yet quantized,
so as to minimise ||W X - Q X||^2 with H = X X^T / n. As in the reference implementation:
dampening of 1% of the mean diagonal, columns in decreasing order of H's diagonal (act-order),
lazy batch updates of 128 columns, and (with `group`) scales fixed per block of the original
column order before the walk ("static groups"), so the grid is the one the export stores.
"""

from __future__ import annotations

import torch

DAMP = 0.01
BATCH = 128


@torch.no_grad()
def gptq(w2d: torch.Tensor, hessian: torch.Tensor, bits: int, group: int = 0) -> torch.Tensor:
    """Quantized (out, in) weights on the symmetric grid of `bits` (per row, or per block of
    `group` inputs); `hessian` is the (in, in) X X^T / n of the layer's calibration inputs."""
    from ._quant import group_scales

    W = w2d.detach().double().clone()
    rows, cols = W.shape
    H = hessian.detach().double().clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    scales = group_scales(W.float(), bits, group).double()  # fixed before the walk (static groups)
    qmax = 2 ** (bits - 1) - 1
    perm = torch.argsort(torch.diag(H), descending=True)
    W, H = W[:, perm], H[perm][:, perm]
    H += DAMP * torch.mean(torch.diag(H)) * torch.eye(cols, dtype=H.dtype)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    col_scale = scales[:, perm // group] if group else scales[:, None].expand(rows, cols)  # (out, in), permuted
    Q = torch.zeros_like(W)
    for i1 in range(0, cols, BATCH):
        i2 = min(i1 + BATCH, cols)
        W1, Err1 = W[:, i1:i2].clone(), torch.zeros(rows, i2 - i1, dtype=W.dtype)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            w, d, s = W1[:, i], Hinv1[i, i], col_scale[:, i1 + i]
            q = torch.round(w / s).clamp(-qmax, qmax) * s
            Q[:, i1 + i] = q
            err = (w - q) / d
            W1[:, i:] -= err[:, None] @ Hinv1[i, i:][None, :]
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    out = torch.empty_like(Q)
    out[:, perm] = Q
    return out.to(w2d.dtype)
