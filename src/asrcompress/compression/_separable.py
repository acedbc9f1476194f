"""Depthwise-separable approximation of a 2-D conv: depthwise k x k (m filters per input channel,
the original stride and padding) -> pointwise 1x1 (`SeparableConv2d`).

The separable form is W~[o, i] = sum_j P[o, i m + j] D[i m + j] (each (C_out, k k) slice of the
weight by input channel i has rank <= m), so:
    from the weights alone: the best W~ in Frobenius norm takes each slice's m leading singular
    triplets (Eckart-Young), with ||W - W~||_F^2 = the discarded slices' sigma^2; at m >= min(C_out,
    k k) it is exact.
    from calibration audio (`fit: activations`, the default): minimise the output error
    E ||(W - W~) u||^2 = tr((W - P D) S (W - P D)^T) over the conv's input patches u, with
    S = E[u u^T] (`Calibration.hessians`), by alternating least squares from the SVD start:
    P = W S D^T (D S D^T)^-1, then D (block-diagonal, linear in its k k m C_in entries) solved
    exactly for that P. Each step minimises the objective over its half, so it never rises.
Multiply-adds of an (H, W) -> (H', W') conv: C_out C_in k^2 H' W' -> m C_in k^2 H' W' + m C_in C_out H' W'
(ORT's NCHWc layout pads channel counts to multiples of 8: keep m C_in one). For the front end's
144 -> 144 3x3 stride-2 conv (~38% of the fp32 model's time), m = 1 does 8.5x fewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ._configs import ConfigError, MethodConfig, is_int
from ._layers import LayerInfo, SeparableConv2d
from ._registry import Choice, Handler, Replace, register

FITS = ("weights", "activations")
DAMP = 0.01  # of S's mean diagonal, as GPTQ's: patches that never vary still give a solvable system
ALS_ROUNDS = 4
MAX_JOINT = 6000  # D-step unknowns solved jointly; above it only the pointwise is refitted


@dataclass(frozen=True)
class SeparableConfig(MethodConfig):
    """Depthwise-separable conv with `multiplier` depthwise filters per input channel; `fit`:
    weights (SVD of each input channel's slice) or activations (least squares on calibration)."""

    key: ClassVar[str] = "separable"
    multiplier: int = 1
    fit: str = "activations"

    def __post_init__(self) -> None:
        if not is_int(self.multiplier) or not 1 <= self.multiplier <= 64:
            raise ConfigError(f"separable.multiplier={self.multiplier} must be an integer in [1, 64]")
        if self.fit not in FITS:
            raise ConfigError(f"separable.fit={self.fit!r} is not one of {', '.join(FITS)}")


def svd_separable(w: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Depthwise (m C_in, 1, k, k) and pointwise (C_out, m C_in, 1, 1) weights: each input
    channel's (C_out, k k) slice by its m leading singular triplets (zero-padded past its rank)."""
    w64 = w.detach().double()
    c_out, c_in, kh, kw = w64.shape
    u, s, vh = torch.linalg.svd(w64.permute(1, 0, 2, 3).reshape(c_in, c_out, kh * kw), full_matrices=False)
    r = min(m, s.shape[1])
    dw = torch.zeros(c_in, m, kh * kw, dtype=w64.dtype)
    pw = torch.zeros(c_out, c_in, m, dtype=w64.dtype)
    dw[:, :r] = vh[:, :r]  # (C_in, r, k k)
    pw[:, :, :r] = (u[:, :, :r] * s[:, None, :r]).permute(1, 0, 2)  # (C_out, C_in, r)
    return dw.reshape(c_in * m, 1, kh, kw).to(w.dtype), pw.reshape(c_out, c_in * m, 1, 1).to(w.dtype)


def dense(dw: torch.Tensor, pw: torch.Tensor, c_in: int) -> torch.Tensor:
    """The (C_out, C_in, k, k) conv weight a separable pair (m = its filters / C_in) computes."""
    m_cin, _, kh, kw = dw.shape
    m = m_cin // c_in
    return torch.einsum("oij,ijt->oit", pw.reshape(pw.shape[0], c_in, m), dw.reshape(c_in, m, kh * kw)).reshape(
        pw.shape[0], c_in, kh, kw)


def output_error(w: torch.Tensor, approx: torch.Tensor, s: torch.Tensor) -> float:
    """tr((W - W~) S (W - W~)^T): the mean squared output error over the patches S describes."""
    e = (w - approx).double().reshape(w.shape[0], -1)
    return float(torch.einsum("oa,ab,ob->", e, s.double(), e))


def _ridge(a: torch.Tensor, frac: float) -> torch.Tensor:
    return a + frac * a.diagonal().mean().clamp(min=1e-30) * torch.eye(a.shape[0], dtype=a.dtype)


@torch.no_grad()
def fit_separable(w: torch.Tensor, m: int, s: torch.Tensor, rounds: int = ALS_ROUNDS,
                  ) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Depthwise and pointwise weights that minimise the output error on patches with second
    moment `s` (C_in k k, C_in k k), by alternating least squares from the SVD start; and the
    error after the start and after each half-step (non-increasing)."""
    c_out, c_in, kh, kw = w.shape
    kk, w2 = kh * kw, w.detach().double().reshape(c_out, -1)  # (C_out, C_in k k)
    S = _ridge(s.detach().double(), DAMP)
    dw, pw = (t.double() for t in svd_separable(w, m))
    d = dw.reshape(c_in, m, kk)
    # support of the block-diagonal D (m C_in, C_in k k): row i m + j, column i k k + t
    rows = torch.arange(c_in * m).repeat_interleave(kk)
    cols = (torch.arange(c_in)[:, None, None] * kk + torch.arange(kk)[None, None, :]).expand(c_in, m, kk).reshape(-1)

    def full(d: torch.Tensor) -> torch.Tensor:
        D = torch.zeros(c_in * m, c_in * kk, dtype=torch.float64)
        D[rows, cols] = d.reshape(-1)
        return D

    P, D = pw.reshape(c_out, c_in * m), full(d)
    errors = [output_error(w2, P @ D, S)]
    for _ in range(rounds):
        A = _ridge(D @ S @ D.T, 1e-9)  # (m C_in, m C_in)
        P = torch.linalg.solve(A, (w2 @ S @ D.T).T).T  # (C_out, m C_in)
        errors.append(output_error(w2, P @ D, S))
        if rows.numel() <= MAX_JOINT:
            G = P.T @ P
            M = _ridge(G[rows][:, rows] * S[cols][:, cols], 1e-9)
            d = torch.linalg.solve(M, (P.T @ w2 @ S)[rows, cols]).reshape(c_in, m, kk)
            D = full(d)
            errors.append(output_error(w2, P @ D, S))
    return (d.reshape(c_in * m, 1, kh, kw).to(w.dtype), P.reshape(c_out, c_in * m, 1, 1).to(w.dtype), errors)


@register(SeparableConfig, order=16, choices={"separable": Choice("multiplier", None)}, example={"multiplier": 1})
class Separable(Handler):
    replaces_layer = True

    def not_applicable(self, layer: LayerInfo, model: nn.Module) -> str | None:
        m = model.get_submodule(layer.module_name)
        if not isinstance(m, nn.Conv2d) or m.groups != 1 or max(m.kernel_size) < 2:
            return "the separable approximation applies to a full (not grouped) 2-D conv with a kernel above 1x1"
        if m.in_channels < 2:
            return f"one input channel: a {m.in_channels} -> {m.out_channels} conv is separable already"
        return None

    def check(self, layer: LayerInfo, cfg: SeparableConfig) -> None:
        if len(layer.shape) != 4:  # not a 2-D conv: not_applicable skips it (or names it)
            return
        c_out, kk = layer.shape[0], layer.shape[2] * layer.shape[3]
        if cfg.multiplier * (c_out + kk) >= c_out * kk:  # m C_in (k k + C_out) vs C_out C_in k k per output pixel
            raise ConfigError(f"separable.multiplier={cfg.multiplier} does no fewer multiply-adds than layer "
                              f"{layer.name} itself (at most {(c_out * kk - 1) // (c_out + kk)} for it)")

    def needs_calibration(self, cfg: SeparableConfig) -> str | None:
        return "separable.fit activations" if cfg.fit == "activations" else None

    def compute(self, weight: torch.Tensor, cfg: SeparableConfig, calibration: torch.Tensor | None = None) -> Replace:
        if calibration is not None:
            dw, pw, errors = fit_separable(weight, cfg.multiplier, calibration)
            record = {"multiplier": cfg.multiplier, "fit": "activations",
                      "output_error": [round(errors[0], 6), round(errors[-1], 6)]}
        else:
            dw, pw = svd_separable(weight, cfg.multiplier)
            record = {"multiplier": cfg.multiplier, "fit": "weights"}
        return Replace([dw, pw], record)

    def rebuild(self, module: nn.Module, record: dict) -> nn.Module:
        return SeparableConv2d(module, int(record["multiplier"]))
