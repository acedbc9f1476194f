"""Surrogate stage of the search: thousands of policies scored in seconds from the sensitivity
scan, with no model trained, run or timed.

A policy's predicted figures:
  kl     the sum of its options' scanned KLs (additive: tested by the scan's `additivity`)
  bytes  the base's stored bytes plus each unit's change: one option's from its scan row, and
         several options on one unit priced together (4-bit and 50% sparsity on one tensor do
         not save 7/8 + 1/2 of it), once per combination and cached
  ms@P   the base's predicted ms plus the options' changes, per profile (the predictor sums operators)

Policies are proposed by an Optuna study: NSGA-II on (kl, size, ms on the space's first
profile), seeded with the space's uniform baselines and with Lagrangian knapsack solutions
(each unit's choice minimising kl + a * bytes + b * ms over a sweep of prices a and b, the
formulation of HAWQ-V3's ILP and ModelOpt's auto_quantize). Ordinal choices (bits, sparsity,
ratios, ranks) are `suggest_int` over their values in order of strength, so neighbouring values
are neighbours to the sampler. Two parameter sets that mean one policy (a method that refuses
a layer changes nothing) take their figures from a cache, never scored twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from ..compression import METHODS, choice_keys
from ..errors import UserError
from ._option_cost import total_bytes
from ._sample import baseline_params
from ._sensitivity import Option, Unit, combine, selected_options, unit_options, units_of
from ._space import Space

SIZE_RATIOS = (2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 16.0)  # budgets swept: base bytes / policy
SPEEDUPS = (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)  # bytes at least, and base ms / policy ms on the first profile
BYTE_PRICES = tuple(float(a) for a in np.geomspace(1e-3, 100.0, 24))  # knapsack seeds: KL nats per
MS_PRICES = (0.0, 0.1, 0.3, 1.0, 3.0)  # fraction of the base's bytes, and per fraction of its ms


@dataclass(frozen=True)
class Param:
    """One searched value of one unit, as the sampler sees it."""

    name: str  # the search's parameter name, gN.LAYER.KEY
    key: str  # space key
    values: tuple  # ordinal: in order of strength, off beside the mildest value
    ordinal: bool

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.ordinal:
            return self.values[trial.suggest_int(self.name, 0, len(self.values) - 1)]
        return trial.suggest_categorical(self.name, list(self.values))

    def encode(self, value: Any) -> Any:
        """The Optuna parameter value that means `value`."""
        return self.values.index(value) if self.ordinal else value

    def decode(self, raw: Any) -> Any:
        return self.values[raw] if self.ordinal else raw


def make_param(name: str, key: str, values: list) -> Param:
    """Trigger keys with numeric values are ordinal: sorted, with None (the method off) beside
    the mildest value, as 4 < 6 < 8 < off bits, 0.25 < 0.5 < off rank, off = 0 < 0.3 sparsity."""
    spec = METHODS[choice_keys()[key]].choices[key]
    numeric = all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values)
    if spec.trigger and numeric:
        return Param(name, key, tuple(sorted(values, key=lambda v: math.inf if v is None else v)), True)
    return Param(name, key, tuple(values), False)


@dataclass(frozen=True)
class Prediction:
    kl: float
    bytes: float  # stored bytes (the size formula: sparse and 6-bit formats counted as stored)
    ms: dict[str, float]  # per profile
    options: tuple[Option, ...]  # what the policy applies (an option a layer refuses is left out)
    onnx_bytes: float | None = None  # the .onnx file, what deploys (when the scan priced it)

    @property
    def size(self) -> float:
        """The size the study minimises: the .onnx file's bytes where known, else stored bytes."""
        return self.bytes if self.onnx_bytes is None else self.onnx_bytes

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(o.key for o in self.options)

    def policy(self) -> dict:
        return combine(list(self.options))


PriceUnit = Callable[[list[Option]], dict]  # several options of one unit -> {dbytes, quantized_rest}
Resized = Callable[[Option | list[Option]], dict[str, float]]  # shape-changing option(s) -> layers' kept fraction
SHAPE_ORDER = 30  # methods applied before this order change shapes (depth, structured, factorisations)


class Surrogate:
    """Predicted figures of any policy of `space` from the scan's `rows` (which must price bytes
    and, for each profile of `base_ms`, milliseconds: `OptionCost`).

    `resized(option)`: for an option that changes shapes, the fraction of each other layer's
    weights it keeps (structured pruning of a producer shrinks its consumer's input). An option
    on a resized layer then saves that fraction of its scanned bytes and milliseconds: the
    consumer's 4-bit saving is 7/8 of what is left of it, not of the whole. Without it, the
    sums over-credit exactly the policies that stack methods on coupled layers, which is where
    an optimiser on the surrogate goes."""

    def __init__(self, space: Space, layer_names: list[str], rows: list[dict], base_bytes: float,
                 base_ms: dict[str, float], price_unit: PriceUnit, resized: Resized | None = None,
                 base_onnx_bytes: float | None = None, onnx_rest: float = 0.0,
                 layer_weights: dict[str, float] | None = None, price_unit_onnx: PriceUnit | None = None) -> None:
        if not base_ms:
            raise UserError(f"space {space.name!r}: the surrogate needs a latency@PROFILE objective to predict")
        self.space, self.layer_names = space, list(layer_names)
        self.base_bytes, self.base_ms = float(base_bytes), dict(base_ms)
        self.base_onnx = None if base_onnx_bytes is None else float(base_onnx_bytes)
        self.onnx_rest = float(onnx_rest)  # in every kernel option's donnx, once per model (`onnx_rest`)
        self._price_unit, self._price_onnx = price_unit, price_unit_onnx  # -> {dbytes, ...}, {donnx}
        self.profile = next(iter(base_ms))  # the one the study optimises; every profile is predicted
        self.units: list[Unit] = units_of(space, layer_names)
        self.params = [make_param(name, key, values) for u in self.units for key, (name, values) in u.choices.items()]
        self.rows = {r["key"]: r for r in rows}
        fields = ["kl", "dbytes", "quantized_rest", *(f"dms@{p}" for p in base_ms),
                  *(["donnx"] if base_onnx_bytes is not None else [])]
        for u in self.units:
            for opt in unit_options(u):
                row = self.rows.get(opt.key)
                if row is None or (row["kl"] is not None and any(f not in row for f in fields)):
                    raise UserError(f"option {opt.key}: not in the sensitivity scan, or not priced on "
                                    f"{', '.join(base_ms)} (run asrcompress sensitivity with latency on)")
        # A unit's option saves bytes (and ms) in proportion to each layer's size, so what the
        # policy's cuts leave of a unit is the size-weighted mean of its layers' kept fractions
        # (`run_propose` passes the base's parameter counts). Unweighted, a group spanning small and
        # large layers (all of an encoder's, for bits) was credited as if its cut large layers were
        # average ones: 4-bit on halved FFNs predicted at -0.04 MB, measured 1.62.
        self.layer_weights = dict(layer_weights or {})
        self._resized = resized
        self._stacked_kept: dict[tuple[str, ...], dict[str, float]] = {}  # a unit's cuts together
        self.resize: dict[str, dict[str, float]] = {}  # option key -> {other layer: kept fraction}
        if resized is not None:
            for u in self.units:
                for opt in unit_options(u):
                    if METHODS[opt.method].order < SHAPE_ORDER and self.rows[opt.key]["kl"] is not None:
                        kept = {k: v for k, v in resized(opt).items() if v != 1.0}
                        if kept:
                            self.resize[opt.key] = kept
        self._cache: dict[tuple[str, ...], Prediction] = {}
        self._unit_cache: dict[tuple[str, ...], dict] = {}
        self.scored = 0  # distinct policies scored
        self.duplicates = 0  # parameter sets answered from the cache

    @property
    def base_size(self) -> float:
        """The base's size on the study's size axis (`Prediction.size`)."""
        return self.base_bytes if self.base_onnx is None else self.base_onnx

    def options(self, values: dict[str, Any]) -> list[Option]:
        """The options a parameter assignment applies, one per (layer, method): a later group's
        choice for a layer overrides an earlier one's, as in the search's policies; an option
        the scan found the layer refuses is dropped (it changes nothing)."""
        chosen: dict[tuple[str, str], Option] = {}
        for u in self.units:
            for opt in selected_options(u, {k: values[name] for k, (name, _) in u.choices.items()}):
                chosen[(opt.unit, opt.method)] = opt
        return [o for o in chosen.values() if self.rows[o.key]["kl"] is not None]

    def _unit_row(self, opts: list[Option]) -> dict:
        if len(opts) == 1:
            return self.rows[opts[0].key]
        key = tuple(sorted(o.key for o in opts))
        if key not in self._unit_cache:
            self._unit_cache[key] = self._price_unit(opts)
        return self._unit_cache[key]

    def predict(self, values: dict[str, Any]) -> Prediction:
        """The figures of the policy `values` (parameter name -> value) means."""
        opts = self.options(values)
        key = tuple(o.key for o in opts)
        if key in self._cache:
            self.duplicates += 1
            return self._cache[key]
        by_unit: dict[str, list[Option]] = {}
        for o in opts:
            by_unit.setdefault(o.unit, []).append(o)
        # layer -> fraction of its weights the policy's shape changes keep, over all units and per unit
        kept: dict[str, float] = {}
        kept_by: dict[str, dict[str, float]] = {}
        for o in opts:
            for layer, f in self.resize.get(o.key, {}).items():
                kept[layer] = kept.get(layer, 1.0) * f
                mine = kept_by.setdefault(o.unit, {})
                mine[layer] = mine.get(layer, 1.0) * f

        def share(o: Option, own_unit: bool) -> float:
            """What is left of `o`'s layers after the policy's cuts; `own_unit=False` leaves out
            the cuts of `o`'s own unit (priced together with it, or `o` itself)."""
            if not kept:
                return 1.0
            mine = {} if own_unit else kept_by.get(o.unit, {})
            return self._mean(o.layers, lambda layer: kept.get(layer, 1.0) / mine.get(layer, 1.0))

        units = []
        for us in by_unit.values():  # a unit's own cuts are in its price
            row, f = self._unit_row(us), share(us[0], own_unit=False)
            units.append(row if f == 1.0 else {**row, "dbytes": f * row["dbytes"]})
        # a value option (bits, sparsity) runs on what its unit's cuts leave; a cut was timed whole
        ms_share = [share(o, own_unit=o.key not in self.resize) for o in opts]
        pred = Prediction(
            kl=float(sum(self.rows[o.key]["kl"] for o in opts)),
            bytes=total_bytes(self.base_bytes, units),
            ms={p: self.base_ms[p] + sum(f * self.rows[o.key][f"dms@{p}"] for f, o in zip(ms_share, opts))
                for p in self.base_ms},
            options=tuple(opts),  # the .onnx file changes as the graph does: as latency, cut by cut
            onnx_bytes=None if self.base_onnx is None else self._onnx_bytes(
                by_unit, dict(zip((o.key for o in opts), ms_share)), {o.key: share(o, own_unit=False) for o in opts}))
        self._cache[key] = pred
        self.scored += 1
        return pred

    def _onnx_bytes(self, by_unit: dict[str, list[Option]], shares: dict[str, float],
                    others: dict[str, float]) -> float:
        """The .onnx file's bytes: each option's scanned change on what the policy's cuts leave of
        its layers (`shares`), the fp16 rest once. A unit stacking two cuts (structured pruning
        and low rank on one layer) is exported with its options together (`price_unit_onnx`:
        its new nodes and their padded 4-bit factors are graph bytes no stored count sees);
        without it, approximately: the cuts' exact stacked stored change and the value options
        on what both cuts leave (`others`: what other units' cuts leave)."""
        own, any_kernel = 0.0, False
        for us in by_unit.values():
            kernel = {o.key: bool(self.rows[o.key]["donnx"] and self.rows[o.key]["quantized_rest"]) for o in us}
            any_kernel |= any(kernel.values())
            alone = {o.key: self.rows[o.key]["donnx"] - (self.onnx_rest if kernel[o.key] else 0.0) for o in us}
            cuts = [o for o in us if o.key in self.resize]
            if len(cuts) < 2 or self._resized is None:
                own += sum(shares[o.key] * alone[o.key] for o in us)
                continue
            if self._price_onnx is not None:  # exact: the new nodes' names, MatMulNBits' padded factors
                rest = self.onnx_rest if any(kernel.values()) else 0.0
                own += others[cuts[0].key] * (self._price_onnx(us)["donnx"] - rest)
                continue
            kept = self._kept_together(cuts)
            own += others[cuts[0].key] * self._unit_row(cuts)["dbytes"]
            own += sum(others[o.key] * self._mean(o.layers, lambda layer: kept.get(layer, 1.0)) * alone[o.key]
                       for o in us if o.key not in self.resize)
        return self.base_onnx + own + (self.onnx_rest if any_kernel else 0.0)

    def _mean(self, layers, value: Callable[[str], float]) -> float:
        """`value` over `layers`, weighted by their sizes (`layer_weights`; equal without)."""
        w = [self.layer_weights.get(layer, 1.0) for layer in layers]
        return float(np.dot(w, [value(layer) for layer in layers]) / sum(w))

    def _kept_together(self, cuts: list[Option]) -> dict[str, float]:
        key = tuple(sorted(o.key for o in cuts))
        if key not in self._stacked_kept:
            self._stacked_kept[key] = self._resized(list(cuts))
        return self._stacked_kept[key]

    def neutral(self) -> dict[str, Any]:
        """Every parameter at its method's neutral value where the space offers it (the base)."""
        out = {}
        for p in self.params:
            neutral = METHODS[choice_keys()[p.key]].choices[p.key].neutral
            out[p.name] = neutral if neutral in p.values else p.values[0]
        return out

    def knapsack(self, a: float, b: float) -> dict[str, Any]:
        """The assignment whose every (unit, method) independently takes the option, or off
        where the space allows it, minimising kl + a * dbytes / base bytes + b * dms / base ms
        (each option's own row: an approximation only for the seed, which is then scored)."""
        values = self.neutral()
        for u in self.units:
            best: dict[str, tuple[float, Option]] = {}
            for opt in unit_options(u):
                row = self.rows[opt.key]
                if row["kl"] is None:
                    continue
                cost = (row["kl"] + a * (row["dbytes"] if self.base_onnx is None else row["donnx"]) / self.base_size
                        + b * row[f"dms@{self.profile}"] / self.base_ms[self.profile])
                if cost < best.get(opt.method, (math.inf,))[0]:
                    best[opt.method] = (cost, opt)
            for method, (cost, opt) in best.items():
                trigger = opt.choices[0][0]
                off_allowed = METHODS[method].choices[trigger].neutral in u.choices[trigger][1]
                if cost < 0 or not off_allowed:
                    for k, v in opt.choices:
                        values[u.choices[k][0]] = v
        return values

    def seeds(self) -> list[dict[str, Any]]:
        """The base, the space's uniform baselines, and the knapsack over the price sweep."""
        names = {p.name for p in self.params}
        out = [self.neutral()]
        out += [{k: v for k, v in b.items() if k in names} for b in baseline_params(self.space, self.layer_names).values()]
        out += [self.knapsack(a, b) for b in MS_PRICES for a in BYTE_PRICES]
        unique: dict[tuple, dict] = {}
        for values in out:
            unique.setdefault(tuple(o.key for o in self.options(values)), values)
        return list(unique.values())

    def values_of(self, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
        return {p.name: p.decode(trial.params[p.name]) for p in self.params}


def surrogate_study(sur: Surrogate, trials: int = 2000, population: int = 50, seed: int = 0,
                    name: str = "surrogate", progress: Callable[[int, int], None] | None = None,
                    sampler: str = "nsga2") -> optuna.Study:
    """NSGA-II over the surrogate's (kl, size in MB, ms on its first profile), in memory, the
    seeds enqueued first; `trials` counts the seeds. `sampler="random"`: uniform proposals and
    no seeds, the comparison that shows what the proposal mechanism buys."""
    if sampler not in ("nsga2", "random"):
        raise UserError(f"--sampler {sampler!r} is not one of nsga2, random")
    if trials < 1:
        raise UserError(f"--trials {trials} must be at least 1")
    if population < 2:
        raise UserError(f"--population {population} must be at least 2")
    import warnings

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # thousands of trials: no line for each
    try:
        chosen = (optuna.samplers.NSGAIISampler(population_size=population, seed=seed) if sampler == "nsga2"
                  else optuna.samplers.RandomSampler(seed=seed))
        study = optuna.create_study(directions=["minimize"] * 3, sampler=chosen, study_name=name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(["kl", "size_mb" if sur.base_onnx is None else "onnx_mb", f"ms@{sur.profile}"])
        seeds = sur.seeds() if sampler == "nsga2" else []
        study.set_user_attr("seeds", len(seeds))
        for values in seeds:
            study.enqueue_trial({p.name: p.encode(values[p.name]) for p in sur.params})

        def objective(trial: optuna.Trial) -> tuple[float, float, float]:
            pred = sur.predict({p.name: p.suggest(trial) for p in sur.params})
            for profile, ms in pred.ms.items():
                trial.set_user_attr(f"ms@{profile}", ms)
            trial.set_user_attr("stored_mb", pred.bytes / 1e6)
            if progress:
                progress(trial.number + 1, trials)
            return pred.kl, pred.size / 1e6, pred.ms[sur.profile]

        study.optimize(objective, n_trials=trials)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return study


KL_REFERENCE = 0.5  # nats per frame: the hypervolume's KL bound (on the shipped model, greedy WER
# about doubles near 0.35 without recovery)


def surrogate_hypervolume(study: optuna.Study, sur: Surrogate, first: int | None = None) -> float:
    """Hypervolume of the study's (kl, MB, ms) below (KL_REFERENCE, 1.1 x base MB, 1.1 x base
    ms), normalised by that box's volume, so 1.0 would be a free lossless model; `first`: of
    its first trials only (the seeds alone, say)."""
    from ._pareto import hypervolume

    ref = [KL_REFERENCE, 1.1 * sur.base_size / 1e6, 1.1 * sur.base_ms[sur.profile]]
    points = [list(t.values) for t in study.trials[:first] if t.state == TrialState.COMPLETE]
    return hypervolume(points, ref) / float(np.prod(ref))


@dataclass(frozen=True)
class Pick:
    """A candidate the surrogate proposes, and the budgets it is the least damaging under."""

    trial: int
    prediction: Prediction
    budgets: tuple[str, ...]


def budget_picks(study: optuna.Study, sur: Surrogate, n: int = 24, size_ratios: tuple[float, ...] = SIZE_RATIOS,
                 speedups: tuple[float, ...] = SPEEDUPS) -> list[Pick]:
    """For each size budget (`Prediction.size` <= base / r) and latency budget (ms <= base / s) the study's
    least-KL policy within both, and the study's smallest and fastest policies; distinct
    policies, the `n` least damaged (predicted KL) when there are more: a budget whose best try
    is already far gone is the one to give up (docs/search.md, Picks, says what spreading them
    over the KL range cost)."""
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    base_ms = sur.base_ms[sur.profile]
    found: dict[tuple, tuple[optuna.trial.FrozenTrial, list[str]]] = {}
    for r in size_ratios:
        for s in speedups:
            ok = [t for t in done if t.values[1] * 1e6 <= sur.base_size / r and t.values[2] <= base_ms / s]
            if ok:
                best = min(ok, key=lambda t: (t.values[0], t.values[1], t.values[2]))
                pred = sur.predict(sur.values_of(best))
                found.setdefault(pred.key, (best, []))[1].append(f"size>={r:g}x,speed>={s:g}x")
    for label, axis in (("smallest", 1), ("fastest", 2)):  # the front's ends, whatever the budgets reach
        if done:
            best = min(done, key=lambda t: (t.values[axis], t.values[0]))
            found.setdefault(sur.predict(sur.values_of(best)).key, (best, []))[1].append(label)
    picks = sorted((Pick(t.number, sur.predict(sur.values_of(t)), tuple(b)) for t, b in found.values()),
                   key=lambda p: p.prediction.kl)
    return picks[:n]
