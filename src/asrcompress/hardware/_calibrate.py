"""Micro-benchmarks that calibrate a profile on the machine they run on.

Each benchmark is a small ONNX graph of `copies` independent copies of one operator (so the
weights do not all sit in cache, as in a real model), timed with the session settings the
latency command uses. The fixed cost of one `run` call is measured on an empty graph and
subtracted; per class, non-negative least squares fits
    t = c0 + c_flop * flops + c_weight * weight bytes + c_act * activation bytes
to the per-copy times, over shapes that span what compressed speech models contain.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from scipy.optimize import nnls

from ..export import GridWeight, Int8Paths, int8_matmul, nbits_matmul
from ._graph import Op, graph_ops, session_options

F = TensorProto.FLOAT
RNG = np.random.default_rng(0)


def _model(nodes, inits, inputs, outputs, ms: bool = False) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "bench", inputs, outputs, inits)
    opsets = [helper.make_opsetid("", 18)] + ([helper.make_opsetid("com.microsoft", 1)] if ms else [])
    return helper.make_model(g, opset_imports=opsets)


def _vi(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, F, list(shape))


# kind -> (code bits, MatMulNBits block or 0 for the dynamic int8 kernel, signed int8 weights)
KINDS = {"int8": (7, 0, False), "int8_s8": (7, 0, True), "int4": (4, 32, False), "int4_b64": (4, 64, False),
         "int4_b128": (4, 128, False), "nbits2": (2, 32, False), "nbits8": (8, 32, False)}


def _matmul(m: int, k: int, n: int, kind: str, copies: int) -> tuple[onnx.ModelProto, dict]:
    nodes, inits, outs = [], [], []
    for i in range(copies):
        y = f"y{i}"
        if kind == "fp32":
            w = numpy_helper.from_array(RNG.standard_normal((k, n)).astype(np.float32), f"w{i}")
            nd, ts = [helper.make_node("MatMul", ["x", w.name], [y])], [w]
        else:
            bits, block, signed = KINDS[kind]
            q = 2 ** (bits - 1) - 1
            codes = RNG.integers(-q, q + 1, (n, k)).astype(np.int32)
            scales = RNG.uniform(1e-3, 1e-2, (n, -(-k // block)) if block else n).astype(np.float32)
            grid = GridWeight(codes, scales, bits, block)
            nd, ts = nbits_matmul(f"w{i}", "x", y, grid) if block else int8_matmul(f"w{i}", "x", y, grid, signed=signed)
        nodes += nd
        inits += ts
        outs.append(_vi(y, [m, n]))
    feeds = {"x": RNG.standard_normal((m, k)).astype(np.float32)}
    return _model(nodes, inits, [_vi("x", [m, k])], outs, ms=kind != "fp32"), feeds


def s8_probe() -> tuple[onnx.ModelProto, np.ndarray, np.ndarray, np.ndarray]:
    """A u8 x s8 MatMul that saturates the int16 pair sums of a CPU without VNNI (onnxruntime
    PR #12088): every quantized activation is 255 and every weight +127, so each pair sums to
    2 x 255 x 127 = 64,770 > 32,767 whichever inputs the kernel pairs, and the product comes out
    about half the exact one. (Weights of alternating sign would let saturated pairs cancel and
    hide it.) Returns (model, input, its quantized codes, the exact output)."""
    k, n = 64, 8
    codes = np.full((n, k), 127, dtype=np.int32)
    grid = GridWeight(codes, np.full(n, 1e-2, np.float32), 8)
    nodes, inits = int8_matmul("w", "x", "y", grid, signed=True)
    model = _model(nodes, inits, [_vi("x", [1, k])], [_vi("y", [1, n])], ms=True)
    x = np.ones((1, k), np.float32)
    x[0, -1] = 0.0  # range [0, 1]: scale 1/255, zero point 0, so ones quantize to 255
    q = np.rint(x * 255)
    return model, x, q, (q / 255) @ (codes.T * 1e-2)


def s8_full_range_exact(threads: int) -> bool:
    """Whether u8 x s8 computes full-range 8-bit weights exactly on this CPU (`s8_probe`)."""
    model, x, _, exact = s8_probe()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s8.onnx"
        onnx.save(model, str(path))
        sess = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
        y = sess.run(None, {"x": x})[0]
    return bool(np.allclose(y, exact, rtol=1e-3, atol=1e-3))


def _act_matmul(b: int, m: int, k: int, n: int, copies: int):
    nodes = [helper.make_node("MatMul", ["a", "b"], [f"y{i}"]) for i in range(copies)]
    outs = [_vi(f"y{i}", [b, m, n]) for i in range(copies)]
    feeds = {"a": RNG.standard_normal((b, m, k)).astype(np.float32),
             "b": RNG.standard_normal((b, k, n)).astype(np.float32)}
    return _model(nodes, [], [_vi("a", [b, m, k]), _vi("b", [b, k, n])], outs), feeds


def _conv(c_in: int, c_out: int, t: int, f: int, kernel, stride, group: int, copies: int, same: bool | None = None):
    """`copies` convs of (1, c_in, t[, f]); padded to keep the length when `same` (default: the
    grouped ones, as the conv module's depthwise conv is; the front end's are unpadded)."""
    nodes, inits, outs = [], [], []
    shape = [1, c_in, t] + ([f] if f else [])
    same = group > 1 if same is None else same
    for i in range(copies):
        w = numpy_helper.from_array(
            RNG.standard_normal([c_out, c_in // group, *kernel]).astype(np.float32) * 0.05, f"w{i}")
        bias = numpy_helper.from_array(np.zeros(c_out, np.float32), f"b{i}")
        pads = [kk // 2 for kk in kernel] * 2 if same else [0] * (2 * len(kernel))
        nodes.append(helper.make_node("Conv", ["x", w.name, bias.name], [f"y{i}"], group=group,
                                      kernel_shape=list(kernel), strides=list(stride), pads=pads))
        inits += [w, bias]
        outs.append(helper.make_tensor_value_info(f"y{i}", F, None))
    feeds = {"x": RNG.standard_normal(shape).astype(np.float32)}
    return _model(nodes, inits, [_vi("x", shape)], outs), feeds


def _unary(op: str, shape, copies: int, **attrs):
    nodes, inits = [], []
    for i in range(copies):
        ins = ["x"]
        if op in ("Add", "Mul"):
            ins.append("x2")
        if op == "LayerNormalization":
            g = numpy_helper.from_array(np.ones(shape[-1], np.float32), f"g{i}")
            b = numpy_helper.from_array(np.zeros(shape[-1], np.float32), f"b{i}")
            inits += [g, b]
            ins += [g.name, b.name]
        nodes.append(helper.make_node(op, ins, [f"y{i}"], **attrs))
    inputs = [_vi("x", shape)] + ([_vi("x2", shape)] if op in ("Add", "Mul") else [])
    feeds = {v.name: RNG.standard_normal(shape).astype(np.float32) for v in inputs}
    outs = [helper.make_tensor_value_info(f"y{i}", F, None) for i in range(copies)]
    return _model(nodes, inits, inputs, outs), feeds


def _reorder(op: str, shape, copies: int):
    """ORT's NCHWc layout conversions, which it inserts where a blocked conv chain meets an op
    that is not blocked (e.g. a depthwise conv with a channel multiplier). ReorderOutput reads a
    blocked tensor: with 144 or 288 channels (multiples of the block) that is the same shape."""
    attrs = {"channels": shape[1]} if op == "ReorderOutput" else {}
    nodes = [helper.make_node(op, ["x"], [f"y{i}"], domain="com.microsoft.nchwc", **attrs) for i in range(copies)]
    outs = [helper.make_tensor_value_info(f"y{i}", F, None) for i in range(copies)]
    g = helper.make_graph(nodes, "bench", [_vi("x", shape)], outs)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft.nchwc", 1)])
    return model, {"x": RNG.standard_normal(shape).astype(np.float32)}


def _empty():
    return _model([helper.make_node("Identity", ["x"], ["y"])], [], [_vi("x", [1])], [_vi("y", [1])]), \
        {"x": np.zeros(1, np.float32)}


def _time_us(path: Path, feeds: dict, threads: int, budget_s: float = 0.25, min_runs: int = 15) -> float:
    sess = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    for _ in range(3):
        sess.run(None, feeds)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < budget_s and len(times) < 400):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(times)


_CLASS = {"fp32": "matmul_fp32", "int8": "matmul_int8", "int8_s8": "matmul_int8_s8", "int4": "matmul_int4",
          "int4_b64": "matmul_int4", "int4_b128": "matmul_int4", "nbits2": "matmul_nbits2", "nbits8": "matmul_nbits8"}


CONV_CLASSES = {"conv", "conv_pointwise", "conv_depthwise", "conv_grouped", "conv_grouped_1d"}


def _copies(k: int, n: int, kind: str) -> int:
    """Enough copies that the weights span ~8 MB, as in a model (2..12)."""
    return int(np.clip(8e6 / (k * n * (4 if kind == "fp32" else 1)), 2, 12))


def benchmarks(quick: bool = False) -> list[tuple[str, Callable[[], tuple], int]]:
    """(class, graph builder, copies) over shapes found in compressed speech models."""
    out: list[tuple[str, Callable, int]] = []
    ms = (49, 199) if not quick else (199,)
    dims = (16, 48, 144, 288, 576, 1152) if not quick else (48, 144, 576)
    for kind in ("fp32", "int8", "int8_s8", "int4"):
        for m in ms:
            for k in dims + ((2736,) if not quick else ()):
                for n in dims:
                    out.append((_CLASS[kind], lambda m=m, k=k, n=n, kind=kind: _matmul(m, k, n, kind, _copies(k, n, kind)),
                                _copies(k, n, kind)))
    for kind in ("int4_b64", "int4_b128", "nbits2", "nbits8"):  # block sizes and widths, on a coarser grid
        for m in ms:
            for k in (144, 576, 1152) if not quick else (576,):
                for n in (144, 576, 1152) if not quick else (576,):
                    out.append((_CLASS[kind], lambda m=m, k=k, n=n, kind=kind: _matmul(m, k, n, kind, _copies(k, n, kind)),
                                _copies(k, n, kind)))
    for t in ms:  # attention scores and context: activation x activation
        for heads in (1, 4):
            out.append(("matmul_fp32", lambda t=t, h=heads: _act_matmul(h, t, 36, t, 4), 4))
            out.append(("matmul_fp32", lambda t=t, h=heads: _act_matmul(h, t, t, 36, 4), 4))
    # The front end: conv1 (1 -> C on 80 mels), conv2 and its replacements on (T/2, 39) -> (T/4, 19):
    # full 3x3 (pruned channels, a Tucker core), 1x1 (Tucker's reduce and expand, the separable
    # pointwise) and depthwise 3x3 with a channel multiplier (the separable depthwise).
    for t in ((201, 801) if not quick else (801,)):
        t2 = (t - 1) // 2
        out.append(("conv", lambda t=t: _conv(1, 144, t, 80, (3, 3), (2, 2), 1, 2), 2))
        for c_in, c_out in ((36, 144), (144, 144), (72, 72), (36, 36)) if not quick else ((144, 144),):
            out.append(("conv", lambda t2=t2, a=c_in, b=c_out: _conv(a, b, t2, 39, (3, 3), (2, 2), 1, 2), 2))
        for c_in, c_out, tt, f in ((144, 36, t2, 39), (36, 144, t2 // 2, 19), (144, 144, t2 // 2, 19),
                                   (288, 144, t2 // 2, 19)) if not quick else ((144, 144, t2 // 2, 19),):
            out.append(("conv_pointwise", lambda a=c_in, b=c_out, tt=tt, f=f: _conv(a, b, tt, f, (1, 1), (1, 1), 1, 2), 2))
        for c in (72, 144) if not quick else (144,):
            for m in (1, 2, 3) if not quick else (1, 2):  # m = 1: NCHWc depthwise kernel; m > 1: generic grouped
                out.append(("conv_depthwise" if m == 1 else "conv_grouped",
                            lambda t2=t2, c=c, m=m: _conv(c, c * m, t2, 39, (3, 3), (2, 2), c, 2, same=False), 2))
        for shape in ((144, t2, 39), (288, t2 // 2, 19), (144, t2 // 2, 19)) if not quick else ((144, t2, 39),):
            for op in ("ReorderInput", "ReorderOutput"):
                out.append(("layout", lambda op=op, shape=shape: _reorder(op, [1, *shape], 4), 4))
    for t in ms:  # the conv module's depthwise 1-D conv
        for c in (72, 144, 288) if not quick else (144,):
            out.append(("conv_grouped_1d", lambda t=t, c=c: _conv(c, c, t, 0, (31,), (1,), c, 4), 4))
    for t in ms:
        for c in (16, 144, 576) if not quick else (144,):
            for op in ("Add", "Mul", "Transpose"):
                out.append(("elementwise", lambda t=t, c=c, op=op: _unary(op, [t, 1, c], 8), 8))
            for op, attrs in (("Sigmoid", {}), ("LayerNormalization", {"axis": -1}), ("Softmax", {"axis": -1})):
                out.append(("transcendental", lambda t=t, c=c, op=op, a=attrs: _unary(op, [t, 1, c], 8, **a), 8))
        out.append(("transcendental", lambda t=t: _unary("Softmax", [4, t, t], 4, axis=-1), 4))
    out.append(("shape", lambda: _unary("Neg", [4], 16), 16))
    return out


def _fit(rows: list[tuple[Op, float]]) -> dict[str, float]:
    a = np.array([[1.0, op.flops * 1e-3, op.weight_bytes * 1e-3, op.act_bytes * 1e-3] for op, _ in rows])
    y = np.array([t for _, t in rows])
    # Relative error matters: weight each row by 1 / t so small ops are fitted as well as big.
    w = 1.0 / np.maximum(y, 1.0)
    coef, _ = nnls(a * w[:, None], y * w)
    return dict(zip(("c0_us", "c_flop_ns", "c_weight_ns", "c_act_ns"), (float(c) for c in coef)))


def calibrate(threads: int, quick: bool = False, progress: Callable[[int, int], None] | None = None
              ) -> tuple[dict, Int8Paths]:
    """Fitted coefficients per operator class, plus the fixed cost of one run call; and the
    table of both int8 paths' per-copy times per (K, N, T) (`export/_int8_paths`)."""
    rows: dict[str, list[tuple[Op, float]]] = {}
    int8: dict[tuple[int, int, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.onnx"
        model, feeds = _empty()
        onnx.save(model, str(path))
        run_us = min(_time_us(path, feeds, threads) for _ in range(3))
        items = benchmarks(quick)
        for i, (cls, build, copies) in enumerate(items):
            model, feeds = build()
            onnx.save(model, str(path))
            per_copy = max(_time_us(path, feeds, threads) - run_us, 0.0) / copies
            # A conv is filed under the class ORT's choice of kernel gives it (a depthwise conv
            # may or may not get the NCHWc kernel), the others under the class benchmarked.
            family = CONV_CLASSES if cls in CONV_CLASSES else {cls}
            ops = [op for op in graph_ops(path, feeds=feeds, threads=threads) if op.cls in family]
            if ops:
                main = max(ops, key=lambda op: op.flops)
                rows.setdefault(main.cls, []).append((main, per_copy))
            if cls in ("matmul_int8", "matmul_int8_s8"):
                (m, k), n = feeds["x"].shape, model.graph.output[0].type.tensor_type.shape.dim[1].dim_value
                int8.setdefault((k, n, m), {})[cls] = max(per_copy, 1e-3)
            if progress:
                progress(i + 1, len(items))
    cal = {cls: _fit(r) for cls, r in rows.items()}
    cal["run"] = {"c0_us": run_us, "c_flop_ns": 0.0, "c_weight_ns": 0.0, "c_act_ns": 0.0}
    table = tuple((k, n, t, round(v["matmul_int8"], 3), round(v["matmul_int8_s8"], 3))
                  for (k, n, t), v in sorted(int8.items()) if len(v) == 2)
    paths = Int8Paths(table, s8_full_range_exact(threads))
    return {k: {kk: round(vv, 6) for kk, vv in v.items()} for k, v in cal.items()}, paths


def memory_bandwidth_gbs(threads: int) -> float:
    """Streaming bandwidth: y = a + b over 3 x 32 MB, far beyond the caches."""
    n = 8 * 1024 * 1024
    model, feeds = _unary("Add", [n], 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bw.onnx"
        onnx.save(model, str(path))
        t_us = _time_us(path, feeds, threads, budget_s=1.0, min_runs=10)
    return 3 * 4 * n / (t_us * 1e3)  # bytes / ns = GB/s


def host_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, ONNX Runtime {ort.__version__}"
