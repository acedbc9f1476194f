"""Hardware profiles: YAML device descriptions, validated against one schema.

Figures are per device, for the thread count a deployment uses. A profile produced by
`asrcompress calibrate` also carries `calibration`: per-operator-class cost coefficients
fitted to micro-benchmarks on that machine, which the predictor prefers over the datasheet
roofline, and `int8_paths`: the measured u8 x u8 / u8 x s8 table the export picks int8 kernels by. `measure: true` marks the machine latency is measured on, not predicted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from .._yaml import read_yaml
from ..errors import UserError
from ..export import Int8Paths, parse_int8_paths

NUMBERS = {  # field -> (must be > 0, unit)
    "cores": "count", "threads": "count", "fp32_gflops": "GFLOP/s", "int8_gops": "GOP/s",
    "int4_gops": "GOP/s", "mem_bandwidth_gbs": "GB/s", "op_overhead_us": "us",
}
KERNELS = ("int8_matmul", "int4_matmul", "sparse_matmul")
CLASSES = ("run", "matmul_fp32", "matmul_int8", "matmul_int8_s8", "matmul_int4", "matmul_nbits2", "matmul_nbits8",
           "conv", "conv_pointwise", "conv_depthwise", "conv_grouped", "conv_grouped_1d", "layout", "elementwise", "transcendental", "shape",
           "node")
FACTOR_GROUPS = {
    "matmul": ("matmul_fp32", "matmul_int8", "matmul_int8_s8", "matmul_int4", "matmul_nbits2", "matmul_nbits8"),
    "conv": ("conv", "conv_pointwise", "conv_depthwise", "conv_grouped", "layout"),
    "other": ("conv_grouped_1d", "elementwise", "transcendental", "shape"),
}
COEFFS = ("c0_us", "c_flop_ns", "c_weight_ns", "c_act_ns")  # t = c0 + a*flops + b*weight bytes + c*act bytes


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    cores: int
    threads: int
    fp32_gflops: float
    int8_gops: float
    int4_gops: float
    mem_bandwidth_gbs: float
    op_overhead_us: float
    kernels: dict[str, bool]
    measure: bool = False
    calibration: dict[str, dict[str, float]] | None = None
    calibration_factor: float = 1.0
    calibration_factors: dict[str, float] | None = None  # per group of classes (FACTOR_GROUPS)
    int8_paths: Int8Paths | None = None
    path: str = field(default="", compare=False)


def _fail(path: Path, msg: str) -> UserError:
    return UserError(f"{path}: {msg}")


def parse_profile(doc: object, path: Path) -> Profile:
    if not isinstance(doc, dict):
        raise _fail(path, "a profile is a YAML mapping of fields")
    known = {f.name for f in fields(Profile)} - {"path"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise _fail(path, f"unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
    for key in ("name", "description", *NUMBERS, "kernels"):
        if key not in doc:
            raise _fail(path, f"missing field {key!r}")
    for key in ("name", "description"):
        if not isinstance(doc[key], str) or not doc[key].strip():
            raise _fail(path, f"field {key!r} must be a non-empty string")
    for key, unit in NUMBERS.items():
        v = doc[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(path, f"field {key!r} must be a number ({unit}), got {v!r}")
        if not v > 0 and not (key == "op_overhead_us" and v == 0):
            raise _fail(path, f"field {key!r} must be positive ({unit}), got {v}")
        if unit == "count" and int(v) != v:
            raise _fail(path, f"field {key!r} must be a whole number, got {v}")
    if doc["threads"] > doc["cores"]:
        raise _fail(path, f"field 'threads' ({doc['threads']}) is more than 'cores' ({doc['cores']})")
    kernels = doc["kernels"]
    if not isinstance(kernels, dict) or set(kernels) != set(KERNELS) or not all(
            isinstance(v, bool) for v in kernels.values()):
        raise _fail(path, f"field 'kernels' must map each of {', '.join(KERNELS)} to true or false")
    factor = doc.get("calibration_factor", 1.0)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0.2 <= factor <= 5:
        raise _fail(path, f"field 'calibration_factor' must be a number in [0.2, 5], got {factor!r}")
    groups = doc.get("calibration_factors")
    if groups is not None:
        if not isinstance(groups, dict):
            raise _fail(path, f"field 'calibration_factors' must map {', '.join(FACTOR_GROUPS)} to numbers")
        for g, v in groups.items():
            if g not in FACTOR_GROUPS:
                raise _fail(path, f"calibration_factors group {g!r} is not one of {', '.join(FACTOR_GROUPS)}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.2 <= v <= 5:
                raise _fail(path, f"calibration_factors.{g} must be a number in [0.2, 5], got {v!r}")
    if not isinstance(doc.get("measure", False), bool):
        raise _fail(path, "field 'measure' must be true or false")
    cal = doc.get("calibration")
    if cal is not None:
        if not isinstance(cal, dict):
            raise _fail(path, "field 'calibration' must map operator classes to coefficients")
        for cls, coeffs in cal.items():
            if cls not in CLASSES:
                raise _fail(path, f"calibration class {cls!r} is not one of {', '.join(CLASSES)}")
            if not isinstance(coeffs, dict) or set(coeffs) != set(COEFFS):
                raise _fail(path, f"calibration.{cls} must give {', '.join(COEFFS)}")
            for k, v in coeffs.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                    raise _fail(path, f"calibration.{cls}.{k} must be a number >= 0, got {v!r}")
    fields_ = {k: doc[k] for k in doc}
    if "int8_paths" in doc:
        fields_["int8_paths"] = parse_int8_paths(doc["int8_paths"], str(path))
    return Profile(path=str(path), **fields_)


def load_profile(path: Path) -> Profile:
    return parse_profile(read_yaml(path, "hardware profile"), Path(path))


def load_profiles(folder: Path, names: list[str]) -> dict[str, Profile]:
    """The profiles `names` from `folder` (NAME.yaml each)."""
    return {name: load_profile(Path(folder) / f"{name}.yaml") for name in names}
