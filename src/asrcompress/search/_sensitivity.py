"""Sensitivity scan, the search's first stage: the damage each option the space allows does on
its own, with every other layer left uncompressed.

Each option (one layer or one group searched as a unit, one method turned on with its
modifiers, e.g. `bits=4 quant_kind=log`) is applied by the same `compress_and_recover` a
trial uses, without recovery, and scored against the uncompressed model on the same dev
utterances:
  kl    mean over output frames of KL(teacher || student) of the CTC posteriors, in nats
  dwer  greedy WER of the student minus the base's, on those utterances
Every option is measured directly (no one-backward-pass Fisher/HAWQ estimate): one forward of
the dev utterances per option is cheap enough here, and it has no approximation to defend.

Rows are cached by the model folder's hash and the dev audio's hash, one JSON line per option
as it finishes, so a stopped scan resumes where it stopped and another space reuses what
overlaps.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..compression import METHODS, Policy, PolicyError, Recovery, choice_keys, compress_and_recover
from ..compression import configs_from_choices, needs_data, size_report
from ..errors import UserError
from ._option_cost import OptionCost
from ._sample import parameters
from ._settings import model_sha256
from ._space import Space

SCAN_VERSION = 1  # bump when a row's meaning changes: older cache lines are then ignored
COST_DRAWS = 10  # combinations whose size and latency the additivity check prices (an export each)


@dataclass(frozen=True)
class Option:
    """One method on one unit of the space, all else neutral."""

    unit: str  # the layer, or "gN" for group N searched as one
    layers: tuple[str, ...]
    choices: tuple[tuple[str, Any], ...]  # (space key, value): the trigger first, then modifiers

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.choices)

    @property
    def key(self) -> str:
        return f"{self.unit}|{self.label}"

    @property
    def method(self) -> str:
        return choice_keys()[self.choices[0][0]]

    def policy(self) -> dict:
        methods = configs_from_choices(dict(self.choices))
        return {"version": 1, "rules": [{"pattern": layer, **methods} for layer in self.layers]}


def scan_options(space: Space, layer_names: list[str]) -> list[Option]:
    """Every option the space allows, unit by unit in model order: each non-neutral value of a
    trigger key (bits, sparsity, structured, ...) with every combination of the values its
    method's modifier keys (quant_kind, group, rounding) take in the same unit."""
    keys = choice_keys()
    units: dict[str, tuple[list[str], dict[str, list]]] = {}
    for name, key, choices, layers in parameters(space, layer_names):
        unit = name.rsplit(".", 1)[0]
        units.setdefault(unit, (layers, {}))[1][key] = choices
    out: list[Option] = []
    for unit, (layers, choices) in units.items():
        label = layers[0] if len(layers) == 1 else unit.split(".", 1)[0]
        for method in dict.fromkeys(keys[k] for k in choices):
            spec = METHODS[method].choices
            triggers = [k for k in choices if keys[k] == method and spec[k].trigger]
            modifiers = [k for k in choices if keys[k] == method and not spec[k].trigger]
            for trigger in triggers:
                for value in choices[trigger]:
                    if value == spec[trigger].neutral:
                        continue
                    for combo in itertools.product(*(choices[m] for m in modifiers)):
                        out.append(Option(label, tuple(layers), ((trigger, value), *zip(modifiers, combo))))
    return out


def combine(options: list[Option]) -> dict:
    """One policy applying all of `options` at once (their units' layers get every method
    turned on there): the combination the additive damage model predicts by a sum."""
    per_layer: dict[str, dict[str, Any]] = {}
    for opt in options:
        for layer in opt.layers:
            per_layer.setdefault(layer, {}).update(opt.choices)
    return {"version": 1, "rules": [{"pattern": layer, **configs_from_choices(values)}
                                    for layer, values in per_layer.items()]}


def frame_kl(teacher: list[np.ndarray], student: list[np.ndarray]) -> float:
    """Mean over frames of KL(p || q) for per-utterance (T', V) log-probabilities p, q."""
    total, frames = 0.0, 0
    for p, q in zip(teacher, student):
        if p.shape != q.shape:
            raise ValueError(f"student output {q.shape} differs from the teacher's {p.shape}")
        lp, lq = torch.from_numpy(p).double(), torch.from_numpy(q).double()
        total += float((lp.exp() * (lp - lq)).sum())
        frames += p.shape[0]
    return total / max(frames, 1)


def _audio_sha256(waves: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for w in waves:
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


class ScanCache:
    """One JSON line per finished option, in a file named by model and dev-audio hashes."""

    def __init__(self, folder: Path, model_hash: str, audio_hash: str) -> None:
        self.path = Path(folder) / f"{model_hash[:16]}-{audio_hash[:16]}.jsonl"
        self.rows: dict[str, dict] = {}
        text = self.path.read_text() if self.path.is_file() else ""
        self._cut = bool(text) and not text.endswith("\n")  # the next row starts on a line of its own
        if text:
            for line in text.splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut short when a scan was killed mid-write
                    continue
                if isinstance(row, dict) and row.get("version") == SCAN_VERSION and "key" in row:
                    self.rows[row["key"]] = row

    def add(self, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(("\n" if self._cut else "") + json.dumps(row) + "\n")
        self._cut = False
        self.rows[row["key"]] = row


def scan(base: nn.Module, model_dir: Path, options: list[Option], dev: list, cache_dir: Path,
         kd_data: Callable[[], tuple[list, list]] | None = None,
         progress: Callable[[int, int, dict], None] | None = None, costs: OptionCost | None = None) -> dict:
    """Measure every option on the dev utterances `dev` (rows already in the cache are read, not
    re-run). `kd_data()` gives training data for an option that needs it (GPTQ's calibration,
    the taylor criterion); without it such an option is reported as skipped. `costs` adds each
    option's stored-bytes and predicted-latency change (`OptionCost`)."""
    from ..objectives import DecoderConfig, build_decoder, emissions, load_waves, wer

    if not dev:
        raise UserError("no dev utterances to scan on")
    t0 = time.perf_counter()
    waves, refs = load_waves(dev)
    greedy = build_decoder(Path(model_dir), DecoderConfig.from_dict({"kind": "greedy"}))

    def score(model: nn.Module) -> tuple[list[np.ndarray], float]:
        lps = emissions(model, waves)
        return lps, wer(refs, [greedy(torch.from_numpy(lp)) for lp in lps])

    teacher, base_wer = score(base)
    cache = ScanCache(cache_dir, model_sha256(model_dir), _audio_sha256(waves))
    data: tuple[list, list] | None = None
    rows: list[dict] = []
    cached = 0
    for i, opt in enumerate(options):
        row = cache.rows.get(opt.key)
        if row is not None and (row["kl"] is None or (costs and any(f not in row for f in costs.fields()))):
            row = None  # skipped before (this scan may have the data it lacked), or not priced on these profiles
        cached += row is not None
        if row is None:
            row = {"version": SCAN_VERSION, "key": opt.key, "unit": opt.unit, "option": opt.label,
                   "method": opt.method, "layers": list(opt.layers)}
            t1 = time.perf_counter()
            try:
                policy = Policy.from_dict(opt.policy(), source=f"option {opt.key}")
                if any(METHODS[k].training for r in policy.rules for k, _ in r.methods):
                    raise PolicyError(f"{opt.method} trains the model; the scan measures one-shot damage only")
                if needs_data(policy) and data is None and kd_data is not None:
                    data = kd_data()
                built = compress_and_recover(base, policy, data if needs_data(policy) else None, Recovery(seed=0))
                student, dwer = score(built.model)
                row |= {"kl": frame_kl(teacher, student), "wer": dwer, "dwer": dwer - base_wer,
                        "skipped": "; ".join(built.skipped) or None}
                if costs:
                    row |= costs.of(built.model, built.states, opt.layers, opt.label)
            except (PolicyError, UserError) as e:  # the method refuses this layer: say so, scan on
                row |= {"kl": None, "wer": None, "dwer": None, "skipped": str(e)}
            row["seconds"] = round(time.perf_counter() - t1, 3)
            cache.add(row)
        rows.append(row)
        if progress:
            progress(i + 1, len(options), row)
    return {"version": SCAN_VERSION, "model": str(model_dir), "model_sha256": model_sha256(model_dir),
            "utterances": len(dev), "base_wer": base_wer, "rows": rows, "cache": str(cache.path),
            "seconds": round(time.perf_counter() - t0, 1), "cached": cached,
            "option_seconds": round(sum(r["seconds"] for r in rows), 1)}


def random_combinations(options: list[Option], n: int, seed: int = 0) -> list[list[Option]]:
    """`n` random combinations, from a few layers to most of them: each draw has a density d in
    [0.05, 0.6], and each (unit, method) is on with probability d, at one of its options."""
    import random

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


def unit_bytes(base: nn.Module, costs: OptionCost, opts: list[Option], cache: dict[tuple, dict],
               kd_data: tuple[list, list] | None = None) -> dict:
    """The byte change of one unit's options applied together (methods on one tensor do not
    add: 4-bit and 50% sparsity do not save 7/8 + 1/2 of it), priced alone and cached."""
    key = tuple(sorted(o.key for o in opts))
    if key not in cache:
        policy = Policy.from_dict(combine(opts), source="unit " + opts[0].unit)
        built = compress_and_recover(base, policy, kd_data if needs_data(policy) else None, Recovery(seed=0))
        cache[key] = costs.of(built.model, built.states, opts[0].layers, "+".join(o.label for o in opts), latency=False)
    return cache[key]


def additivity(base: nn.Module, model_dir: Path, result: dict, options: list[Option], dev: list, n: int = 30,
               seed: int = 0, kd_data: tuple[list, list] | None = None, costs: OptionCost | None = None) -> dict:
    """How well the sum of the scan's single-option KLs predicts the KL of random combinations
    it never measured (held out: none of them is a single option): Spearman's rank correlation
    over `n` draws, the median of measured / predicted, and the rank correlation of the summed
    KL with the combination's greedy WER (what the search finally cares about). With `costs`,
    the same for size (summed byte changes vs the combination's exact size: `dbytes` summed per
    option, `dbytes_per_unit` with each unit's options priced together) and for latency (base
    + summed ms changes vs the predictor on the combination's own graph) per profile, on the
    first COST_DRAWS draws: the relative errors' median and maximum."""
    from scipy.stats import spearmanr

    from ..objectives import DecoderConfig, build_decoder, emissions, load_waves, wer

    kl = {r["key"]: r["kl"] for r in result["rows"]}
    usable = [o for o in options if kl.get(o.key) is not None]
    if not usable or n < 3:
        return {"draws": 0}
    waves, refs = load_waves(dev)
    greedy = build_decoder(Path(model_dir), DecoderConfig.from_dict({"kind": "greedy"}))
    teacher = emissions(base, waves)
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
        built = compress_and_recover(base, policy, kd_data if needs_data(policy) else None, Recovery(seed=0))
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
        student = emissions(built.model, waves)
        measured.append(frame_kl(teacher, student))
        wers.append(wer(refs, [greedy(torch.from_numpy(lp)) for lp in student]))
    def rank_corr(a: list[float], b: list[float]) -> float | None:  # undefined when either is constant
        return float(spearmanr(a, b).statistic) if len(set(a)) > 1 and len(set(b)) > 1 else None

    rho, rho_wer = rank_corr(predicted, measured), rank_corr(predicted, wers)
    ratio = float(np.median([m / p for m, p in zip(measured, predicted) if p > 0])) if any(predicted) else math.nan
    return {"draws": n, "seed": seed, "spearman": rho, "median_measured_over_predicted": ratio,
            "spearman_wer": rho_wer, "predicted": predicted, "measured": measured, "wer": wers,
            "cost_relative_error": {f: {"median": float(np.median(e)), "max": float(max(e))}
                                    for f, e in cost_err.items() if e}, "options_per_draw": [len(c) for c in combos]}


def run_sensitivity(model: Path, corpus: Path, space: Path, utterances: int = 16, kd_utterances: int = 32,
                    cache_dir: Path = Path("mlruns/sensitivity"), tracking_uri: str | None = None,
                    study: str | None = None, progress: Callable[[int, int, dict], None] | None = None,
                    check: int = 30, profiles: Path | None = None, latency: bool = True) -> dict:
    """Scan `space` on the model folder `model`, scored on the corpus's first `utterances` dev
    utterances (calibration and the taylor criterion draw `kd_utterances` of its training
    split). `tracking_uri` (when given) logs the scan to MLflow in experiment `study` (default:
    the space's name). `check` random combinations test the additive damage model
(`additivity`). With `latency`, each option is also priced on the space's `latency@PROFILE`
profiles (from `profiles`, default the shipped ones) and in bytes (`OptionCost`).
Returns the scan (`scan`), with `space`, `additivity` and, when logged, `run_id`."""
    from .._shipped import profiles_dir, resolve
    from ..compression import discover_layers, load_kd_data
    from ..hardware import load_profiles
    from ..data import load_manifest
    from ..models import load_model
    from ._space import check_against_model, load_space

    if utterances < 1:
        raise UserError(f"--utterances {utterances} must be at least 1")
    if kd_utterances < 0:
        raise UserError(f"--kd-utterances {kd_utterances} must not be negative")
    space_path = resolve("space", Path(space))
    sp = load_space(space_path)
    base = load_model(model)
    names = [layer.name for layer in discover_layers(base)]
    check_against_model(sp, names)
    manifest = Path(corpus) / "dev.jsonl"
    if not manifest.is_file():
        raise UserError(f"{manifest}: not found; --corpus must be a corpus folder with dev.jsonl")
    dev, _ = load_manifest(manifest)
    if not dev:
        raise UserError(f"{manifest}: no usable dev utterances to scan on")
    has_train = (Path(corpus) / "train.jsonl").is_file() and kd_utterances > 0
    data: list = []

    def kd() -> tuple[list, list]:  # loaded once, on first need
        if not data:
            data.append(load_kd_data(corpus, kd_utterances))
        return data[0]

    options = scan_options(sp, names)
    costs = OptionCost(base, load_profiles(Path(profiles or profiles_dir()), sp.profiles) if latency else {})
    result = scan(base, Path(model), options, dev[:utterances], Path(cache_dir), kd if has_train else None, progress,
                  costs)
    result |= {"space": str(space_path), "base_bytes": costs.base_bytes, "base_ms": costs.base_ms,
               "exports": costs.exports}
    if check < 0:
        raise UserError(f"--check {check} must not be negative")
    result["additivity"] = additivity(base, Path(model), result, options, dev[:utterances], check,
                                      kd_data=kd() if has_train else None, costs=costs) if check else {"draws": 0}
    if tracking_uri:
        from ._sensitivity_report import log_scan

        result["run_id"] = log_scan(result, tracking_uri, study or space_path.stem)
    return result

