"""Latency predictor: per-operator cost over the graph ONNX Runtime runs, from a profile.

A calibrated class uses the coefficients fitted to micro-benchmarks on the device:
    t = c0 + c_flop * flops + c_weight * weight bytes + c_act * activation bytes
and the whole graph is corrected as fitted on the reference models (`_reference.fit_factors`),
one factor per group of classes (`FACTOR_GROUPS`: MatMuls, the 2-D conv front end, the rest):
    total = sum over groups g of factor_g * (sum of t in g) + factor_other * one run call
            + node.c0_us * operators.
A profile without `calibration_factors` uses its one `calibration_factor` for every group.
Otherwise the datasheet roofline:
    t = max(flops / throughput(dtype), bytes / bandwidth) + per-op overhead
where a low-bit MatMul without its kernel on the device runs at fp32 throughput.
"""

from __future__ import annotations

from ._graph import Op
from ._profile import FACTOR_GROUPS, Profile

EXP_FLOPS = 16  # fp32 operations per exp/rsqrt-like element in the roofline


def _roofline_us(op: Op, p: Profile) -> float:
    bw = p.mem_bandwidth_gbs * 1e3  # bytes per us
    fp32 = p.fp32_gflops * 1e3  # flops per us
    peak = {
        "matmul_int8": p.int8_gops * 1e3 if p.kernels["int8_matmul"] else fp32,
        "matmul_int8_s8": p.int8_gops * 1e3 if p.kernels["int8_matmul"] else fp32,
        "matmul_int4": p.int4_gops * 1e3 if p.kernels["int4_matmul"] else fp32,
        "matmul_nbits2": p.int4_gops * 1e3 if p.kernels["int4_matmul"] else fp32,
        "matmul_nbits8": p.int4_gops * 1e3 if p.kernels["int4_matmul"] else fp32,
    }.get(op.cls, fp32)
    flops = op.flops * (EXP_FLOPS if op.cls == "transcendental" else 1)
    return max(flops / peak, (op.weight_bytes + op.act_bytes) / bw) + p.op_overhead_us


# A profile calibrated before a class existed prices it as its nearest calibrated kin.
FALLBACK = {"matmul_int8_s8": "matmul_int8", "matmul_nbits2": "matmul_int4", "matmul_nbits8": "matmul_int4",
            "conv_pointwise": "conv", "conv_grouped": "conv_depthwise", "conv_grouped_1d": "conv_depthwise",
            "layout": "elementwise"}


def op_us(op: Op, p: Profile) -> float:
    cal = p.calibration or {}
    c = cal.get(op.cls, cal.get(FALLBACK.get(op.cls, "")))
    if c is None:
        return _roofline_us(op, p)
    return (c["c0_us"] + c["c_flop_ns"] * op.flops * 1e-3 + c["c_weight_ns"] * op.weight_bytes * 1e-3
            + c["c_act_ns"] * op.act_bytes * 1e-3)


# Why groups: isolated micro-benchmarks can miss by different amounts per kind of kernel. On one
# host (docs/latency.md) the full 3x3 front-end conv was predicted within a few percent of its
# in-model time, the depthwise conv and layout copies of a separable front end ~2x low, a strided
# transpose more. One factor fitted on models that all keep the full conv then over-prices that
# conv and under-prices the rest: policies that shrank the front end were predicted 8-13% low.
GROUP_OF = {cls: g for g, classes in FACTOR_GROUPS.items() for cls in classes}


def group_sums(ops: list[Op], p: Profile) -> dict[str, float]:
    """Uncorrected predicted milliseconds per factor group; `other` includes one run call."""
    out = dict.fromkeys(FACTOR_GROUPS, 0.0)
    for op in ops:
        out[GROUP_OF.get(op.cls, "other")] += op_us(op, p) / 1e3
    out["other"] += (p.calibration or {}).get("run", {}).get("c0_us", 0.0) / 1e3
    return out


def factors(p: Profile) -> dict[str, float]:
    """The whole-graph factor of each group (1 for an uncalibrated, roofline profile)."""
    if not p.calibration:
        return dict.fromkeys(FACTOR_GROUPS, 1.0)
    return {g: (p.calibration_factors or {}).get(g, p.calibration_factor) for g in FACTOR_GROUPS}


def predict_ms(ops: list[Op], p: Profile) -> tuple[float, dict[str, float]]:
    """Total predicted milliseconds and the share per operator class."""
    f = factors(p)
    by_cls: dict[str, float] = {}
    for op in ops:
        by_cls[op.cls] = by_cls.get(op.cls, 0.0) + op_us(op, p) / 1e3 * f[GROUP_OF.get(op.cls, "other")]
    cal = p.calibration or {}
    run = cal.get("run", {}).get("c0_us", 0.0) / 1e3 * f["other"]
    # `node`: the cost per operator a whole graph adds over the isolated ones (fitted with the
    # factors on the reference models); it is what makes short inputs slower than the sum.
    per_node = cal.get("node", {}).get("c0_us", 0.0) / 1e3
    return sum(by_cls.values()) + run + per_node * len(ops), {k: round(v, 3) for k, v in by_cls.items()}
