"""The sensitivity scan's check of its additive model: random combinations of options it never
measured together, each built and measured, against the sums of their options' rows."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch import nn

from ..compression import Policy, Recovery, compress_and_recover, needs_data, size_report
from ._jsonl import JsonlLog
from ._option_cost import OptionCost
from ._sensitivity import DevScorer, Option, combine, frame_kl

COST_DRAWS = 10  # combinations whose size and latency the additivity check prices (an export each)
PRICE_VERSION = 1  # bump when the size formula changes: older prices are then ignored
KdData = Callable[[], tuple[list, list]]  # training data for calibration, loaded on first need


def random_combinations(options: list[Option], n: int, seed: int = 0) -> list[list[Option]]:
    """`n` random combinations, from a few layers to most of them: each draw has a density d in
    [0.05, 0.6], and each (unit, method) is on with probability d, at one of its options."""
    rng = random.Random(seed)
    by_slot: dict[tuple[str, str], list[Option]] = {}
    for opt in options:
        by_slot.setdefault((opt.unit, opt.method), []).append(opt)
    out = []
    for _ in range(n):
        d = rng.uniform(0.05, 0.6)
        combo = [rng.choice(opts) for opts in by_slot.values() if rng.random() < d]
        out.append(combo or [rng.choice(options)])
    return out


class UnitCache(dict):
    """`unit_bytes`'s prices kept beside the scan they belong to, one JSON line each, so another
    surrogate study (another seed, random proposals) over the same scan prices nothing again."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._log = JsonlLog(path)
        self.path = self._log.path
        for row in self._log.rows():
            if row.get("version") == PRICE_VERSION and isinstance(row.get("options"), list) and "price" in row:
                self[tuple(row["options"])] = row["price"]
        self.loaded = len(self)

    def __setitem__(self, key: tuple, value: dict) -> None:
        if key not in self and hasattr(self, "loaded"):  # not while loading
            self._log.append({"version": PRICE_VERSION, "options": list(key), "price": value})
        super().__setitem__(key, value)


def unit_bytes(base: nn.Module, costs: OptionCost, opts: list[Option], cache: dict[tuple, dict],
               kd_data: KdData | None = None, onnx: bool = False) -> dict:
    """The byte change of one unit's options applied together (methods on one tensor do not
    add: 4-bit and 50% sparsity do not save 7/8 + 1/2 of it), priced alone and cached. With
    `onnx` (and `costs` with profiles), also the .onnx file's change (`donnx`: one export)."""
    key = tuple(sorted(o.key for o in opts))
    if key not in cache:
        policy = Policy.from_dict(combine(opts), source="unit " + opts[0].unit)
        built = compress_and_recover(base, policy, kd_data() if kd_data and needs_data(policy) else None,
                                     Recovery(seed=0))
        cache[key] = costs.of(built.model, built.states, opts[0].layers, "+".join(o.label for o in opts), latency=onnx)
    return cache[key]


def layer_weights(model: nn.Module) -> dict[str, int]:
    """Each layer's parameter count, counted on its module (a factorised layer, low-rank or
    separable, counts its factors, not the shape it stands in for)."""
    from ..compression import discover_layers

    return {layer.name: sum(p.numel() for p in model.get_submodule(layer.module_name).parameters())
            for layer in discover_layers(model)}


def kept_fractions(base: nn.Module, opt: Option | list[Option], kd_data: KdData | None = None) -> dict[str, float]:
    """Each layer's parameter count after `opt` alone (or a list of options together) over its
    count in `base` (1.0: untouched), counted on the layer's module (`layer_weights`)."""
    before = layer_weights(base)
    opts = opt if isinstance(opt, list) else [opt]
    policy = Policy.from_dict(combine(opts), source="options " + " + ".join(o.key for o in opts))
    built = compress_and_recover(base, policy, kd_data() if kd_data and needs_data(policy) else None, Recovery(seed=0))
    return {name: n / before[name] for name, n in layer_weights(built.model).items() if before.get(name)}


def onnx_rest(base: nn.Module, costs: OptionCost, options: list[Option], rows: dict[str, dict],
              kd_data: KdData | None = None) -> float:
    """The .onnx file's once-per-model change when any layer runs an integer kernel (the rest's
    exactly-fp16 small tensors are stored in fp16, export._store_fp16): every such option's
    `donnx` holds it, so it is the sum of two options' changes minus the change of both
    together (one export). 0.0 when fewer than two options on different units quantize."""
    first: dict[str, Option] = {}
    for opt in options:
        r = rows.get(opt.key, {})
        if r.get("kl") is not None and r.get("donnx") and r.get("quantized_rest") and opt.unit not in first:
            first[opt.unit] = opt
            if len(first) == 2:
                break
    if len(first) < 2 or not costs.profiles:
        return 0.0
    a, b = first.values()
    policy = Policy.from_dict(combine([a, b]), source="onnx rest")
    built = compress_and_recover(base, policy, kd_data() if kd_data and needs_data(policy) else None, Recovery(seed=0))
    costs.predict(built.model, built.states)
    return rows[a.key]["donnx"] + rows[b.key]["donnx"] - (costs.onnx_bytes - costs.base_onnx_bytes)


def additivity(base: nn.Module, model_dir: Path, result: dict, options: list[Option], dev: list, n: int = 30,
               seed: int = 0, kd_data: KdData | None = None, costs: OptionCost | None = None,
               scorer: DevScorer | None = None) -> dict:
    """How well the sum of the scan's single-option KLs predicts the KL of random combinations
    it never measured (held out: none of them is a single option): Spearman's rank correlation
    over `n` draws, the median of measured / predicted, and the rank correlation of the summed
    KL with the combination's greedy WER (what the search finally cares about). With `costs`,
    the same for size (summed byte changes vs the combination's exact size: `dbytes` summed per
    option, `dbytes_per_unit` with each unit's options priced together) and for latency (base
    + summed ms changes vs the predictor on the combination's own graph) per profile, on the
    first COST_DRAWS draws: the relative errors' median and maximum. `kd_data()` gives training
    data to a combination that needs it; `scorer`: `dev`'s `DevScorer`, when the caller has it."""
    from scipy.stats import spearmanr

    kl = {r["key"]: r["kl"] for r in result["rows"]}
    usable = [o for o in options if kl.get(o.key) is not None]
    if not usable or n < 3:
        return {"draws": 0}
    scorer = scorer or DevScorer(base, model_dir, dev)
    predicted, measured, wers = [], [], []
    rows = {r["key"]: r for r in result["rows"]}
    fields = costs.fields() if costs else []
    cost_err: dict[str, list[float]] = {f: [] for f in fields if f != "quantized_rest"}
    if costs:
        cost_err["dbytes_per_unit"] = []
    unit_cache: dict[tuple, dict] = {}
    combos = random_combinations(usable, n, seed)
    for combo in combos:
        policy = Policy.from_dict(combine(combo), source="additivity check")
        built = compress_and_recover(base, policy, kd_data() if kd_data and needs_data(policy) else None,
                                     Recovery(seed=0))
        predicted.append(sum(kl[o.key] for o in combo))
        if costs:
            real_bytes = float(size_report(built.model, built.states, costs.base_bytes)["total_bytes"])
            cost_err["dbytes"].append(abs(costs.total_bytes([rows[o.key] for o in combo]) - real_bytes) / real_bytes)
            units = [unit_bytes(base, costs, [o for o in combo if o.unit == u], unit_cache, kd_data)
                     for u in dict.fromkeys(o.unit for o in combo)]
            cost_err["dbytes_per_unit"].append(abs(costs.total_bytes(units) - real_bytes) / real_bytes)
        if costs and costs.profiles and len(cost_err[f"dms@{next(iter(costs.profiles))}"]) < COST_DRAWS:
            for name, ms in costs.predict(built.model, built.states).items():
                summed = costs.base_ms[name] + sum(rows[o.key][f"dms@{name}"] for o in combo)
                cost_err[f"dms@{name}"].append(abs(summed - ms) / ms)
            summed = costs.base_onnx_bytes + sum(rows[o.key]["donnx"] for o in combo)
            cost_err["donnx"].append(abs(summed - costs.onnx_bytes) / costs.onnx_bytes)
        student, student_wer = scorer.score(built.model)
        measured.append(frame_kl(scorer.teacher, student))
        wers.append(student_wer)

    def rank_corr(a: list[float], b: list[float]) -> float | None:  # undefined when either is constant
        return float(spearmanr(a, b).statistic) if len(set(a)) > 1 and len(set(b)) > 1 else None

    rho, rho_wer = rank_corr(predicted, measured), rank_corr(predicted, wers)
    ratio = float(np.median([m / p for m, p in zip(measured, predicted) if p > 0])) if any(predicted) else math.nan
    return {"draws": n, "seed": seed, "spearman": rho, "median_measured_over_predicted": ratio,
            "spearman_wer": rho_wer, "predicted": predicted, "measured": measured, "wer": wers,
            "cost_relative_error": {f: {"median": float(np.median(e)), "max": float(max(e))}
                                    for f, e in cost_err.items() if e}, "options_per_draw": [len(c) for c in combos]}
