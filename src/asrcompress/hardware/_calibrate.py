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

from ..export import GridWeight, int8_matmul, nbits_matmul
from ._graph import Op, graph_ops, session_options

F = TensorProto.FLOAT
RNG = np.random.default_rng(0)


def _model(nodes, inits, inputs, outputs, ms: bool = False) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "bench", inputs, outputs, inits)
    opsets = [helper.make_opsetid("", 18)] + ([helper.make_opsetid("com.microsoft", 1)] if ms else [])
    return helper.make_model(g, opset_imports=opsets)


def _vi(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, F, list(shape))


def _matmul(m: int, k: int, n: int, kind: str, copies: int) -> tuple[onnx.ModelProto, dict]:
    nodes, inits, outs = [], [], []
    for i in range(copies):
        y = f"y{i}"
        codes = RNG.integers(-7 if kind == "int4" else -127, 8 if kind == "int4" else 128, (n, k))
        grid = GridWeight(codes.astype(np.int32), RNG.uniform(1e-3, 1e-2, n).astype(np.float32), 4)
        if kind == "fp32":
            w = numpy_helper.from_array(RNG.standard_normal((k, n)).astype(np.float32), f"w{i}")
            nd, ts = [helper.make_node("MatMul", ["x", w.name], [y])], [w]
        elif kind == "int8":
            nd, ts = int8_matmul(f"w{i}", "x", y, grid)
        else:
            nd, ts = nbits_matmul(f"w{i}", "x", y, grid)
        nodes += nd
        inits += ts
        outs.append(_vi(y, [m, n]))
    feeds = {"x": RNG.standard_normal((m, k)).astype(np.float32)}
    return _model(nodes, inits, [_vi("x", [m, k])], outs, ms=kind != "fp32"), feeds


def _act_matmul(b: int, m: int, k: int, n: int, copies: int):
    nodes = [helper.make_node("MatMul", ["a", "b"], [f"y{i}"]) for i in range(copies)]
    outs = [_vi(f"y{i}", [b, m, n]) for i in range(copies)]
    feeds = {"a": RNG.standard_normal((b, m, k)).astype(np.float32),
             "b": RNG.standard_normal((b, k, n)).astype(np.float32)}
    return _model(nodes, [], [_vi("a", [b, m, k]), _vi("b", [b, k, n])], outs), feeds


def _conv(c_in: int, c_out: int, t: int, f: int, kernel, stride, group: int, copies: int):
    nodes, inits, outs = [], [], []
    shape = [1, c_in, t] + ([f] if f else [])
    for i in range(copies):
        w = numpy_helper.from_array(
            RNG.standard_normal([c_out, c_in // group, *kernel]).astype(np.float32) * 0.05, f"w{i}")
        bias = numpy_helper.from_array(np.zeros(c_out, np.float32), f"b{i}")
        pads = [kk // 2 for kk in kernel] * 2 if group > 1 else [0] * (2 * len(kernel))
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


def benchmarks(quick: bool = False) -> list[tuple[str, Callable[[], tuple], int]]:
    """(class, graph builder, copies) over shapes found in compressed speech models."""
    out: list[tuple[str, Callable, int]] = []
    ms = (49, 199) if not quick else (199,)
    dims = (16, 48, 144, 288, 576, 1152) if not quick else (48, 144, 576)
    for kind in ("fp32", "int8", "int4"):
        for m in ms:
            for k in dims + ((2736,) if not quick else ()):
                for n in dims:
                    copies = int(np.clip(8e6 / (k * n * (4 if kind == "fp32" else 1)), 2, 12))
                    out.append((f"matmul_{kind}", lambda m=m, k=k, n=n, kind=kind, c=copies: _matmul(m, k, n, kind, c),
                                copies))
    for t in ms:  # attention scores and context: activation x activation
        for heads in (1, 4):
            out.append(("matmul_fp32", lambda t=t, h=heads: _act_matmul(h, t, 36, t, 4), 4))
            out.append(("matmul_fp32", lambda t=t, h=heads: _act_matmul(h, t, t, 36, 4), 4))
    for t in ((201, 801) if not quick else (801,)):
        out.append(("conv", lambda t=t: _conv(1, 144, t, 80, (3, 3), (2, 2), 1, 2), 2))
        for c in (36, 144) if not quick else (144,):
            out.append(("conv", lambda t=t, c=c: _conv(c, 144, (t - 1) // 2, 39, (3, 3), (2, 2), 1, 2), 2))
    for t in ms:
        for c in (72, 144, 288):
            out.append(("conv_depthwise", lambda t=t, c=c: _conv(c, c, t, 0, (31,), (1,), c, 4), 4))
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


def calibrate(threads: int, quick: bool = False, progress: Callable[[int, int], None] | None = None) -> dict:
    """Fitted coefficients per operator class, plus the fixed cost of one run call."""
    rows: dict[str, list[tuple[Op, float]]] = {}
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
            ops = [op for op in graph_ops(path, feeds=feeds, threads=threads) if op.cls == cls]
            if ops:
                rows.setdefault(cls, []).append((ops[0], per_copy))
            if progress:
                progress(i + 1, len(items))
    cal = {cls: _fit(r) for cls, r in rows.items()}
    cal["run"] = {"c0_us": run_us, "c_flop_ns": 0.0, "c_weight_ns": 0.0, "c_act_ns": 0.0}
    return {k: {kk: round(vv, 6) for kk, vv in v.items()} for k, v in cal.items()}


def memory_bandwidth_gbs(threads: int) -> float:
    """Streaming bandwidth: y = a + b over 3 x 32 MB, far beyond the caches."""
    n = 8 * 1024 * 1024
    model, feeds = _unary("Add", [n], 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bw.onnx"
        onnx.save(model, str(path))
        t_us = _time_us(path, feeds, threads, budget_s=1.0, min_runs=10)
    return 3 * 4 * n / (t_us * 1e3)  # bytes / ns = GB/s


# The profiles' whole-graph factor is fitted on this family's default model (the shipped one).
REFERENCE_FAMILY = "conformer_ctc"


def reference_models(workdir: Path) -> list[Path]:
    """ONNX exports of a random-initialised default model of `REFERENCE_FAMILY`: fp32, uniform int8, int4."""
    import torch

    from ..compression import Policy, compress_model
    from ..export import export_onnx
    from ..models import architecture

    torch.manual_seed(0)
    base = architecture(REFERENCE_FAMILY).build({}).eval()
    paths = []
    for name, rules in (("fp32", []), ("int8", [{"global": True, "quant": {"bits": 8}}]),
                        ("int4", [{"global": True, "quant": {"bits": 4}}])):
        paths.append(Path(workdir) / f"reference_{name}.onnx")
        if paths[-1].exists():
            continue
        model, states = base, {}
        if rules:
            model, states, _ = compress_model(base, Policy.from_dict({"version": 1, "rules": rules}))
        export_onnx(model, states, paths[-1])
    return paths


def fit_factor(cal: dict, threads: int, paths: list[Path], measured: list[dict[float, float]]) -> float:
    """Median of measured / predicted (without a factor) over models and lengths."""
    from ._predict import predict_ms
    from ._profile import Profile

    flat = Profile(name="fit", description="fit", cores=threads, threads=threads, fp32_gflops=1, int8_gops=1,
                   int4_gops=1, mem_bandwidth_gbs=1, op_overhead_us=0,
                   kernels={"int8_matmul": True, "int4_matmul": True, "sparse_matmul": False}, calibration=cal)
    ratios = [m[s] / predict_ms(graph_ops(p, s, threads=threads), flat)[0]
              for p, m in zip(paths, measured) for s in m]
    return float(statistics.median(ratios))


def reference_factor(cal: dict, threads: int, workdir: Path) -> float:
    """Whole-graph correction: measured / predicted latency of the reference models (2 s and
    8 s), the median ratio. Isolated operators run with warmer caches than a whole network."""
    from ._measure import measure_latency

    paths = reference_models(workdir)
    return fit_factor(cal, threads, paths, measure_latency(paths, threads, [2.0, 8.0], repeats=15))


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
