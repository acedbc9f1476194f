"""Low-bit weights as ONNX Runtime kernels.

A linearly quantized layer's weights already lie on a symmetric grid, w = c * s with integer
codes |c| <= 2^(b-1) - 1, so they are written exactly:
  * b in 5..8: `DynamicQuantizeMatMul` (com.microsoft) with uint8 weights u = c + 128 and
    zero point 128 per column. u8 x u8 avoids the int16 saturation of u8 x s8 on CPUs
    without VNNI. Activations are quantized per tensor at run time (dynamic quantization).
  * b in 2..4: `MatMulNBits` (com.microsoft, bits=4) with u = c + 8 and the default zero
    point 8; blocks of `BLOCK` along K all carry the row's scale. fp32 activations.
  * Conv weights (any b): int8 codes and per-output-channel scales behind a
    `DequantizeLinear`, so the file stores what the layer really needs; the convolution itself
    runs in fp32 (int8 ConvInteger was slower than fp32 on the hosts measured).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import helper, numpy_helper

BLOCK = 32


@dataclass
class GridWeight:
    """(out, in) integer codes and per-row scales, with w = codes * scales[:, None]."""

    codes: np.ndarray
    scales: np.ndarray
    bits: int


def as_grid(w2d: np.ndarray, bits: int, tol: float = 1e-2) -> GridWeight | None:
    """Recover codes and scales from fake-quantized weights (per row, else one per tensor)."""
    qmax = 2 ** (bits - 1) - 1
    w = w2d.astype(np.float64)
    row_max = np.abs(w).max(axis=1)
    for scales in (row_max / qmax, np.full(w.shape[0], np.abs(w).max() / qmax)):
        scales = np.where(scales > 0, scales, 1.0)
        c = w / scales[:, None]
        codes = np.rint(c)
        if np.abs(c - codes).max() <= tol and np.abs(codes).max() <= qmax:
            return GridWeight(codes.astype(np.int32), scales.astype(np.float32), bits)
    return None


def int8_matmul(name: str, a: str, y: str, g: GridWeight) -> tuple[list, list]:
    """Nodes and initializers for Y = A @ W^T with W on an int8-representable grid."""
    n = g.codes.shape[0]
    b = numpy_helper.from_array((g.codes.T + 128).astype(np.uint8), f"{name}.qweight")  # (K, N)
    s = numpy_helper.from_array(g.scales, f"{name}.scale")
    z = numpy_helper.from_array(np.full(n, 128, dtype=np.uint8), f"{name}.zero_point")
    node = helper.make_node("DynamicQuantizeMatMul", [a, b.name, s.name, z.name], [y],
                            name=f"{name}.int8_matmul", domain="com.microsoft")
    return [node], [b, s, z]


def nbits_matmul(name: str, a: str, y: str, g: GridWeight, accuracy_level: int = 0) -> tuple[list, list]:
    """Nodes and initializers for Y = A @ W^T with 4-bit codes, packed two per byte."""
    n, k = g.codes.shape
    blocks = -(-k // BLOCK)
    u = np.full((n, blocks * BLOCK), 8, dtype=np.uint8)  # padding codes are zero weights
    u[:, :k] = (g.codes + 8).astype(np.uint8)
    u = u.reshape(n, blocks, BLOCK)
    packed = (u[..., 0::2] | (u[..., 1::2] << 4)).astype(np.uint8)  # (N, blocks, BLOCK / 2)
    b = numpy_helper.from_array(packed, f"{name}.qweight4")
    s = numpy_helper.from_array(np.repeat(g.scales, blocks).astype(np.float32), f"{name}.scale4")
    node = helper.make_node("MatMulNBits", [a, b.name, s.name], [y], name=f"{name}.nbits_matmul",
                            domain="com.microsoft", K=k, N=n, bits=4, block_size=BLOCK,
                            accuracy_level=accuracy_level)
    return [node], [b, s]


def dequantized_weight(name: str, shape: tuple[int, ...], g: GridWeight) -> tuple[list, list, str]:
    """A DequantizeLinear producing the fp32 weight of `shape` from int8 codes (axis 0 scales)."""
    c = g.codes.reshape(shape).astype(np.int8)
    q = numpy_helper.from_array(c, f"{name}.qweight8")
    s = numpy_helper.from_array(g.scales, f"{name}.wscale")
    z = numpy_helper.from_array(np.zeros(shape[0], dtype=np.int8), f"{name}.wzero")
    out = f"{name}.weight_dq"
    node = helper.make_node("DequantizeLinear", [q.name, s.name, z.name], [out], name=f"{name}.dequantize", axis=0)
    return [node], [q, s, z], out
