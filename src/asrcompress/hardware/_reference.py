"""The whole-graph correction of a calibrated profile, fitted on reference models.

Micro-benchmarks time each operator alone; in a network it runs with colder caches and beside
layout copies, and every operator adds a fixed cost. So a profile corrects the sum of its
operators by one factor per group of classes (`FACTOR_GROUPS`) plus a cost per operator, fitted
on reference models timed on the same machine. The references are random-initialised models of
the shipped family, compressed by fixed policies that vary each group's share of the time (the
MatMul kernels, the front end's form, the blocks kept); they are never the policies a search or a
benchmark evaluates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from ._graph import graph_ops
from ._profile import FACTOR_GROUPS, Profile

# The profiles' whole-graph factors are fitted on this family's default model (the shipped one).
REFERENCE_FAMILY = "conformer_ctc"
_SEPARABLE = {"name": "subsampling.conv2", "separable": {"multiplier": 1, "fit": "weights"}}
_FFN50 = {"pattern": "encoder.*.ffn*.sequential.1", "structured": {"ratio": 0.5}}
# name -> (policy rules, blocks dropped). fp32 / int8 / int4 move the MatMul kernels; the others
# move the front end's share (separable, Tucker-2) and the encoder's (blocks, FFN width).
REFERENCES: dict[str, tuple[list[dict], list[int]]] = {
    "fp32": ([], []),
    "int8": ([{"global": True, "quant": {"bits": 8}}], []),
    "int4": ([{"global": True, "quant": {"bits": 4}}], []),
    "separable_int7": ([_SEPARABLE, {"global": True, "quant": {"bits": 7}}], []),
    "separable2_fp32": ([{**_SEPARABLE, "separable": {"multiplier": 2, "fit": "weights"}}], []),
    "tucker50_fp32": ([{"name": "subsampling.conv2", "tucker": {"rank_fraction": 0.5}}], []),
    "depth4_ffn50_int4": ([_FFN50, {"global": True, "quant": {"bits": 4, "group": 32}}], [1, 3, 5, 7]),
    "separable_depth6_ffn50_int7": ([_SEPARABLE, _FFN50, {"global": True, "quant": {"bits": 7}}], [2, 5]),
}


def reference_policy(name: str) -> dict | None:
    """The policy document of reference `name` (None for fp32: the model as built)."""
    rules, drop = REFERENCES[name]
    if not rules and not drop:
        return None
    return {"version": 1, "rules": rules, **({"depth": {"drop": drop}} if drop else {})}


def reference_models(workdir: Path) -> list[Path]:
    """ONNX exports of a random-initialised default model of `REFERENCE_FAMILY` under each of
    `REFERENCES`' policies (kept in `workdir`, so a rerun reuses them)."""
    import torch

    from ..compression import Policy, compress_model
    from ..export import export_onnx
    from ..models import architecture

    torch.manual_seed(0)
    base = architecture(REFERENCE_FAMILY).build({}).eval()
    paths = []
    for name in REFERENCES:
        paths.append(Path(workdir) / f"reference_{name}.onnx")
        if paths[-1].exists():
            continue
        model, states = base, {}
        doc = reference_policy(name)
        if doc is not None:
            model, states, _ = compress_model(base, Policy.from_dict(doc))
        export_onnx(model, states, paths[-1])
    return paths


def _flat(cal: dict, threads: int) -> Profile:
    """`cal` with no whole-graph correction: the plain sum of its operators."""
    plain = {k: v for k, v in cal.items() if k != "node"}
    return Profile(name="fit", description="fit", cores=threads, threads=threads, fp32_gflops=1, int8_gops=1,
                   int4_gops=1, mem_bandwidth_gbs=1, op_overhead_us=0,
                   kernels={"int8_matmul": True, "int4_matmul": True, "sparse_matmul": False}, calibration=plain)


def fit_factors(cal: dict, threads: int, paths: list[Path], measured: list[dict[float, float]],
                grouped: bool = True) -> tuple[dict[str, float], float]:
    """The correction fitted to the measured latencies (ms) of `paths`, each at its lengths (s):
    `solve_factors` on each model's uncorrected per-group sums under `cal`."""
    from ._predict import group_sums

    flat = _flat(cal, threads)
    rows, y = [], []
    for p, m in zip(paths, measured):
        for s, ms in m.items():
            ops = graph_ops(p, s, threads=threads)
            sums = group_sums(ops, flat)
            rows.append([sums[g] for g in FACTOR_GROUPS] + [len(ops) / 1e3])
            y.append(ms)
    return solve_factors(np.asarray(rows), np.asarray(y), grouped)


def solve_factors(a: np.ndarray, y: np.ndarray, grouped: bool = True) -> tuple[dict[str, float], float]:
    """Fit measured = sum_g factor_g * a[:, g] + per_node * a[:, -1] (a: one row per timing, the
    uncorrected milliseconds of each group in `FACTOR_GROUPS` order, then operators / 1000) by
    non-negative least squares weighted for relative error. Returns ({group: factor}, per-node
    microseconds). Each factor is kept in [0.2, 5]. Where the rows do not separate the groups
    (shares proportional in every reference) or a group comes out at 0, every group takes the
    one-factor fit, which `grouped=False` asks for (the correction before the groups)."""
    w = 1.0 / y
    coef, _ = nnls(a * w[:, None], y * w)
    one = np.column_stack([a[:, :-1].sum(1), a[:, -1]])
    (single, single_node), _ = nnls(one * w[:, None], y * w)
    if not grouped or np.linalg.matrix_rank(a * w[:, None]) < a.shape[1] or (coef[:-1] <= 0).any():
        return dict.fromkeys(FACTOR_GROUPS, float(np.clip(single, 0.2, 5.0))), float(single_node)
    return {g: float(np.clip(c, 0.2, 5.0)) for g, c in zip(FACTOR_GROUPS, coef)}, float(coef[-1])


def reference_factors(cal: dict, threads: int, workdir: Path) -> tuple[dict[str, float], float]:
    """({group: factor}, per-node microseconds) from the reference models at 2 s and 8 s."""
    from ._measure import measure_latency

    paths = reference_models(workdir)
    return fit_factors(cal, threads, paths, measure_latency(paths, threads, [2.0, 8.0], repeats=15))
