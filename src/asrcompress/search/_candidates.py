"""The search's third stage: the surrogate's candidates measured for real, without recovery.

Each candidate is built by the same `compress_and_recover` a trial uses (no distillation),
exported to ONNX, and run by ONNX Runtime on the dev utterances: its KL to the base and greedy
WER come from the graph that would ship, its stored bytes from the exact size formula and the
.onnx file, its latency from the calibrated predictor on its own graph (no timing). Beside
each figure stands the surrogate's prediction, so how far the surrogate was off is measured
on the very policies it chose, not only on random ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch import nn

from ..compression import Policy, Recovery, compress_and_recover, needs_data, size_report
from ._additivity import KdData
from ._sensitivity import DevScorer, frame_kl
from ._surrogate import Pick
from ._trial import REFERENCE_S


def measure_onnx(model: nn.Module, states: dict, folder: Path, scorer: DevScorer, profiles: dict,
                 base_bytes: int) -> dict:
    """Export `model` to `folder`/model.onnx and measure it there: ONNX Runtime's posteriors
    on the scorer's utterances against the base's, stored bytes, and predicted ms."""
    from ..export import OnnxAcousticModel, export_onnx
    from ..hardware import graph_ops, predict_ms
    from ..models import features_of

    path = Path(export_onnx(model, states, folder / "model.onnx")["path"])
    lps = OnnxAcousticModel(path, features_of(model)).emissions(scorer.waves)
    ops = graph_ops(path, REFERENCE_S)
    return {"kl": frame_kl(scorer.teacher, lps), "wer": scorer.wer(lps),
            "bytes": int(size_report(model, states, base_bytes)["total_bytes"]), "onnx_bytes": path.stat().st_size,
            **{f"ms@{name}": predict_ms(ops, p)[0] for name, p in profiles.items()}}


def score_candidates(base: nn.Module, picks: list[Pick], scorer: DevScorer, profiles: dict, out: Path,
                     kd_data: KdData | None = None,
                     progress: Callable[[int, int, dict], None] | None = None) -> list[dict]:
    """Measure the base's own export (row "base") and every pick, each in `out`/NAME/ with its
    policy.yaml; rows carry the measured figures and the surrogate's as `pred_*`."""
    base_bytes = int(size_report(base)["total_bytes"])
    rows = []
    todo: list[tuple[str, Pick | None]] = [("base", None), *((f"cand-{i:02d}", p) for i, p in enumerate(picks))]
    for i, (name, pick) in enumerate(todo):
        t0 = time.perf_counter()
        folder = Path(out) / name
        folder.mkdir(parents=True, exist_ok=False)
        doc = pick.prediction.policy() if pick else {"version": 1, "rules": []}
        policy = Policy.from_dict(doc, source=f"{name}'s policy", allow_empty=True)
        (folder / "policy.yaml").write_text(policy.to_yaml())
        built = compress_and_recover(base, policy, kd_data() if kd_data and needs_data(policy) else None,
                                     Recovery(seed=0))
        row = {"name": name, "folder": str(folder), "options": len(pick.prediction.options) if pick else 0,
               "budgets": list(pick.budgets) if pick else [], "trial": pick.trial if pick else None}
        row |= measure_onnx(built.model, built.states, folder, scorer, profiles, base_bytes)
        if pick:
            p = pick.prediction
            row |= {"pred_kl": p.kl, "pred_bytes": p.bytes, "pred_onnx_bytes": p.onnx_bytes,
                    **{f"pred_ms@{k}": v for k, v in p.ms.items()}}
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        if progress:
            progress(i + 1, len(todo), row)
    return rows


def surrogate_error(rows: list[dict], profiles: list[str]) -> dict:
    """How well the surrogate's predictions held on the candidates: Spearman's rank correlation
    of predicted KL with measured KL and with greedy WER, and the relative errors (median,
    maximum) of stored bytes, .onnx bytes and each profile's ms."""
    from scipy.stats import spearmanr

    cands = [r for r in rows if "pred_kl" in r]
    if len(cands) < 2:
        return {"candidates": len(cands)}

    def rho(a: list[float], b: list[float]) -> float | None:  # undefined when either is constant
        return float(spearmanr(a, b).statistic) if len(set(a)) > 1 and len(set(b)) > 1 else None

    def rel(pred: str, real: str) -> dict:
        e = [abs(r[pred] - r[real]) / r[real] for r in cands]
        return {"median": float(np.median(e)), "max": float(max(e))}

    pk = [r["pred_kl"] for r in cands]
    return {"candidates": len(cands), "spearman_kl": rho(pk, [r["kl"] for r in cands]),
            "spearman_wer": rho(pk, [r["wer"] for r in cands]), "bytes": rel("pred_bytes", "bytes"),
            **({"onnx_bytes": rel("pred_onnx_bytes", "onnx_bytes")} if all(r["pred_onnx_bytes"] for r in cands)
               else {}),
            **{f"ms@{p}": rel(f"pred_ms@{p}", f"ms@{p}") for p in profiles}}
