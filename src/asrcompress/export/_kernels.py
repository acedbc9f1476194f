"""Low-bit weights as ONNX Runtime kernels.

A linearly quantized layer's weights already lie on a symmetric grid, w = c * s with integer
codes |c| <= 2^(b-1) - 1 and one scale per output row or per block of `group` inputs, so they
are written exactly:
  * b in 2..4: `MatMulNBits` (com.microsoft; 2 and 4 bits, 3-bit codes stored in 4) with
    u = c + 2^(bits-1), the default zero point, and the layer's block scales (block = its
    group, else 32 blocks each carrying the row's scale). fp32 activations.
  * b in 5..8, per row: `DynamicQuantizeMatMul`, with signed int8 weights (u8 x s8) or uint8
    weights u = c + 128 and zero point 128 (u8 x u8), whichever the profile's measured table
    says is faster for the layer's shape; 8-bit layers take s8 only where the table's machine
    computed full-range s8 exactly (`_int8_paths`).
  * b in 5..8 with blocks: `MatMulNBits` 8-bit, weight-only (the dynamic int8 kernel has one
    scale per column).
  * Conv weights (any b): their codes as stored (2 or 4 bits packed, else int8) with their
    scales, dequantized to fp32 by a subgraph ONNX Runtime folds once when the session starts;
    the convolution runs in fp32, as int8 ConvInteger was slower than fp32 on the hosts
    measured. The file stores the codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper, numpy_helper

BLOCK = 32  # MatMulNBits block of a per-row layer (each block carries the row's scale)


@dataclass
class GridWeight:
    """(out, in) integer codes and scales, w = codes * scale: scales (out,) per row, or
    (out, blocks) for blocks of `group` inputs."""

    codes: np.ndarray
    scales: np.ndarray
    bits: int
    group: int = 0

    def block_scales(self) -> np.ndarray:
        """(out, blocks) with each row's blocks of `group` inputs (or BLOCK, repeating the row's scale)."""
        if self.group:
            return self.scales
        blocks = -(-self.codes.shape[1] // BLOCK)
        return np.repeat(self.scales[:, None], blocks, axis=1)


def _units(w: np.ndarray, group: int) -> np.ndarray:
    """(out, in) -> (out, units, size): one unit per row, or per block of `group` (zero-padded)."""
    if not group:
        return w[:, None, :]
    pad = -w.shape[1] % group
    return np.pad(w, ((0, 0), (0, pad))).reshape(w.shape[0], -1, group)


def as_grid(w2d: np.ndarray, bits: int, group: int = 0, tol: float = 1e-2) -> GridWeight | None:
    """Recover integer codes and scales from weights on a symmetric grid. Per unit (row or
    block): the largest m <= qmax with every value / (unit max / m) an integer. That is the
    grid's own scale whatever the rounding (a GPTQ block need not use its largest code); any fit
    found is exact. None when a unit fits no grid of `bits`."""
    qmax = 2 ** (bits - 1) - 1
    u = _units(w2d.astype(np.float64), group)  # (out, units, size)
    top = np.abs(u).max(axis=2)  # (out, units)
    scales = np.zeros_like(top)
    for m in range(qmax, 0, -1):
        todo = scales == 0
        if not todo.any():
            break
        s = np.where(top > 0, top / m, 1.0)
        c = u / s[:, :, None]
        ok = (np.abs(c - np.rint(c)).max(axis=2) <= tol) & todo
        scales[ok] = s[ok]
    scales[top == 0] = 1.0
    if (scales == 0).any():
        return None
    codes = np.rint(u / scales[:, :, None]).reshape(w2d.shape[0], -1)[:, : w2d.shape[1]]
    return GridWeight(codes.astype(np.int32), scales.astype(np.float32) if group else scales[:, 0].astype(np.float32),
                      bits, group)


def int8_matmul(name: str, a: str, y: str, g: GridWeight, bias: str | None = None,
                signed: bool | None = None) -> tuple[list, list]:
    """Y = A @ W^T (+ bias) with W on a per-row int8-representable grid: signed weights (u8 x s8)
    or uint8 with zero point 128 (u8 x u8); by default signed for <= 7 bits (see _int8_paths).
    The bias goes into the op: ORT fuses no Add into a DynamicQuantizeMatMul it is given."""
    n = g.codes.shape[0]
    signed = g.bits <= 7 if signed is None else signed
    codes = g.codes.T.astype(np.int8) if signed else (g.codes.T + 128).astype(np.uint8)  # (K, N)
    b = numpy_helper.from_array(codes, f"{name}.qweight")
    s = numpy_helper.from_array(g.scales, f"{name}.scale")
    z = numpy_helper.from_array(np.zeros(n, dtype=np.int8) if signed else np.full(n, 128, dtype=np.uint8),
                                f"{name}.zero_point")
    node = helper.make_node("DynamicQuantizeMatMul", [a, b.name, s.name, z.name] + ([bias] if bias else []), [y],
                            name=f"{name}.int8_matmul", domain="com.microsoft")
    return [node], [b, s, z]


def nbits_matmul(name: str, a: str, y: str, g: GridWeight, accuracy_level: int = 0) -> tuple[list, list]:
    """Y = A @ W^T with 2-, 4- or 8-bit codes in MatMulNBits blocks (3-bit codes stored in 4)."""
    n, k = g.codes.shape
    bits = 2 if g.bits == 2 else 4 if g.bits <= 4 else 8
    block = g.group or BLOCK
    blocks = -(-k // block)
    zero = 2 ** (bits - 1)
    u = np.full((n, blocks * block), zero, dtype=np.uint8)  # padding codes are zero weights
    u[:, :k] = (g.codes + zero).astype(np.uint8)
    per_byte = 8 // bits
    u = u.reshape(n, blocks, block // per_byte, per_byte)
    packed = np.zeros(u.shape[:3], dtype=np.uint8)
    for j in range(per_byte):  # little end first: value j of a byte sits at bits j * `bits`
        packed |= (u[..., j] << (j * bits)).astype(np.uint8)
    b = numpy_helper.from_array(packed, f"{name}.qweight{bits}")
    s = numpy_helper.from_array(g.block_scales().reshape(-1).astype(np.float32), f"{name}.scale{bits}")
    node = helper.make_node("MatMulNBits", [a, b.name, s.name], [y], name=f"{name}.nbits_matmul",
                            domain="com.microsoft", K=k, N=n, bits=bits, block_size=block,
                            accuracy_level=accuracy_level)
    return [node], [b, s]


def dequantized_weight(name: str, shape: tuple[int, ...], g: GridWeight) -> tuple[list, list, str]:
    """The fp32 weight of `shape` from its stored codes, as a subgraph ONNX Runtime folds once at
    session start: packed unsigned codes (2 or 4 bits a value; 3-bit codes in 4) unpacked with
    shifts and masks, or int8 codes cast, then (code - zero) * scale over blocks of `group` inputs
    (a row is one block). Not a DequantizeLinear: ORT's constant folding leaves those for its QDQ
    fusions, so the conv would get a weight computed at every run, with no pre-packing and no
    NCHWc layout (the front end's conv2 ran slower than fp32 that way)."""
    out = f"{name}.weight_dq"
    rows, cols = g.codes.shape
    group = g.group or cols
    blocks = -(-cols // group)
    bits = 2 if g.bits == 2 else 4 if g.bits <= 4 else 8
    zero = 2 ** (bits - 1) if bits < 8 else 0
    codes = np.full((rows, blocks * group), 0, dtype=np.int32)
    codes[:, :cols] = g.codes
    const = lambda v, n, dt=np.int64: numpy_helper.from_array(np.asarray(v, dtype=dt), f"{name}.{n}")  # noqa: E731
    inits, nodes = [], []
    if bits < 8:  # (rows * blocks * group) codes, `per` to a byte, the first in the low bits
        per = 8 // bits
        u = (codes + zero).astype(np.uint8).reshape(-1, per)
        packed = np.zeros(u.shape[0], dtype=np.uint8)
        for j in range(per):
            packed |= (u[:, j] << (j * bits)).astype(np.uint8)
        q = numpy_helper.from_array(packed, f"{name}.qweight{bits}")
        inits += [q, const([bits * j for j in range(per)], "shifts", np.uint8), const([2 ** bits - 1], "mask", np.uint8),
                  const([-1, 1], "col", np.int64), const([zero], "zero", np.float32)]
        nodes += [
            helper.make_node("Reshape", [q.name, f"{name}.col"], [f"{name}.p2"], name=f"{name}.p2"),
            helper.make_node("BitShift", [f"{name}.p2", f"{name}.shifts"], [f"{name}.sh"], direction="RIGHT",
                             name=f"{name}.shift"),
            helper.make_node("BitwiseAnd", [f"{name}.sh", f"{name}.mask"], [f"{name}.u"], name=f"{name}.mask"),
            helper.make_node("Cast", [f"{name}.u"], [f"{name}.uf"], to=TensorProto.FLOAT, name=f"{name}.cast"),
            helper.make_node("Sub", [f"{name}.uf", f"{name}.zero"], [f"{name}.codes_f"], name=f"{name}.unzero"),
        ]
    else:
        q = numpy_helper.from_array(codes.astype(np.int8), f"{name}.qweight8")
        inits.append(q)
        nodes.append(helper.make_node("Cast", [q.name], [f"{name}.codes_f"], to=TensorProto.FLOAT, name=f"{name}.cast"))
    # 1-D scales, so a quantized export stores the fp16 ones in 2 bytes (export/_onnx._store_fp16)
    s = numpy_helper.from_array(g.block_scales().reshape(-1).astype(np.float32) if g.group else
                                g.scales.astype(np.float32), f"{name}.wscale")
    inits += [s, const([rows, blocks, group], "blocked"), const([rows, blocks, 1], "scale_shape"),
              const([rows, blocks * group], "flat"), const([0], "start"), const([cols], "end"), const([1], "axis"),
              const(list(shape), "shape")]
    nodes += [
        helper.make_node("Reshape", [f"{name}.codes_f", f"{name}.blocked"], [f"{name}.cb"], name=f"{name}.blocks"),
        helper.make_node("Reshape", [s.name, f"{name}.scale_shape"], [f"{name}.s3"], name=f"{name}.scale_shape"),
        helper.make_node("Mul", [f"{name}.cb", f"{name}.s3"], [f"{name}.wb"], name=f"{name}.scale"),
        helper.make_node("Reshape", [f"{name}.wb", f"{name}.flat"], [f"{name}.wr"], name=f"{name}.rows"),
        helper.make_node("Slice", [f"{name}.wr", f"{name}.start", f"{name}.end", f"{name}.axis"], [f"{name}.wc"],
                         name=f"{name}.cut"),
        helper.make_node("Reshape", [f"{name}.wc", f"{name}.shape"], [out], name=f"{name}.reshape"),
    ]
    return nodes, inits, out
