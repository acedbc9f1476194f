"""Write a calibrated profile: figures derived from this machine's micro-benchmarks."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import yaml

from .._outputs import write_text
from ._calibrate import calibrate, host_description, memory_bandwidth_gbs
from ._reference import reference_factors
from ._profile import parse_profile


def _rate(cal: dict, cls: str) -> float:
    """Throughput implied by a class's per-operation cost: 1 / (ns per op) = G ops per second."""
    c = cal.get(cls, {}).get("c_flop_ns", 0.0)
    return round(1.0 / c, 2) if c > 0 else 0.01


def write_profile(out: Path, name: str, threads: int, quick: bool, reference: bool,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    cal, int8_paths = calibrate(threads, quick, progress)
    groups: dict[str, float] = {}
    if reference:
        with tempfile.TemporaryDirectory() as tmp:
            groups, per_node = reference_factors(cal, threads, Path(tmp))
            groups = {g: round(f, 4) for g, f in groups.items()}
            cal["node"] = {"c0_us": round(per_node, 6), "c_flop_ns": 0.0, "c_weight_ns": 0.0, "c_act_ns": 0.0}
    bandwidth = memory_bandwidth_gbs(threads)
    doc = {
        "name": name,
        "description": f"{host_description()}; calibrated with {threads} thread(s)",
        "cores": os.cpu_count() or 1,
        "threads": threads,
        "fp32_gflops": _rate(cal, "matmul_fp32"),
        "int8_gops": _rate(cal, "matmul_int8"),
        "int4_gops": _rate(cal, "matmul_int4"),
        "mem_bandwidth_gbs": round(bandwidth, 2),
        "op_overhead_us": round(cal.get("elementwise", {}).get("c0_us", 0.0), 3),
        "kernels": {"int8_matmul": True, "int4_matmul": True, "sparse_matmul": False},
        "measure": True,
        **({"calibration_factors": groups} if groups else {}),
        "calibration": cal,
        "int8_paths": int8_paths.to_dict(),
    }
    parse_profile(doc, out)  # never write a profile the loader would refuse
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (f"# Produced by `asrcompress calibrate --out {out} --name {name} --threads {threads}"
              f"{' --quick' if quick else ''}{'' if reference else ' --no-reference'}` on {when}.\n"
              "# source: every figure below is measured on this machine by those micro-benchmarks\n"
              "# (ONNX Runtime sessions, median of repeated runs); throughputs are 1 / the fitted\n"
              "# per-operation cost of the MatMul classes, bandwidth is a 3 x 32 MB element-wise Add,\n"
              "# overhead the fitted fixed cost of element-wise operators. calibration_factors: the\n"
              "# whole-graph correction per group of classes, fitted on reference models timed here\n"
              "# (hardware/_reference.py). `measure: true`: latency\n"
              "# on this profile is measured, not predicted. int8_paths: per-copy microseconds of\n"
              "# DynamicQuantizeMatMul with u8 and s8 weights per [K, N, T, u8_us, s8_us], and whether\n"
              "# full-range s8 weights computed exactly (a saturating input, see hardware/_calibrate).\n")
    write_text(Path(out), header + yaml.safe_dump(doc, sort_keys=False))
    return doc
