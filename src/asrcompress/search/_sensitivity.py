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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..compression import METHODS, Policy, PolicyError, Recovery, choice_keys, compress_and_recover
from ..compression import configs_from_choices, needs_data
from ..errors import UserError
from ._jsonl import JsonlLog
from ._option_cost import OptionCost
from ._sample import parameters
from ._settings import model_sha256
from ._space import Space

SCAN_VERSION = 3  # bump when a row's meaning changes: older cache lines are then ignored
# 2: posteriors of one utterance at a time, as deployed (1 padded batches, which shift the last frames)
# 3: `donnx` of files without torch's per-node debugging metadata (export._strip_trace)


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


@dataclass(frozen=True)
class Unit:
    """One searched unit of the space (a layer of a per-layer group, or a whole group) and the
    choices its group offers: space key -> (the search's parameter name, values)."""

    label: str  # Option.unit: the layer, or "gN" for a group of several layers
    layers: tuple[str, ...]
    choices: dict[str, tuple[str, list]]


def units_of(space: Space, layer_names: list[str]) -> list[Unit]:
    """The space's units in model order. A layer two groups choose for is two units with one
    label (one group's structure, another's bits), as in the search's parameters."""
    found: dict[str, Unit] = {}
    for name, key, choices, layers in parameters(space, layer_names):
        unit = name.rsplit(".", 1)[0]
        if unit not in found:
            label = layers[0] if len(layers) == 1 else unit.split(".", 1)[0]
            found[unit] = Unit(label, tuple(layers), {})
        found[unit].choices[key] = (name, choices)
    return list(found.values())


def selected_options(unit: Unit, values: dict[str, Any]) -> list[Option]:
    """The options a unit's chosen values turn on (one per method whose trigger is not neutral,
    with that method's modifiers), built as `scan_options` builds them, so each has a scan row."""
    keys = choice_keys()
    out = []
    for method in dict.fromkeys(keys[k] for k in unit.choices):
        spec = METHODS[method].choices
        modifiers = [k for k in unit.choices if keys[k] == method and not spec[k].trigger]
        for trigger in (k for k in unit.choices if keys[k] == method and spec[k].trigger):
            if values[trigger] != spec[trigger].neutral:
                out.append(Option(unit.label, unit.layers,
                                  ((trigger, values[trigger]), *((m, values[m]) for m in modifiers))))
    return out


def unit_options(unit: Unit) -> list[Option]:
    """Every option of one unit: each non-neutral value of a trigger key (bits, sparsity,
    structured, ...) with every combination of the values its method's modifier keys
    (quant_kind, group, rounding) take in the unit."""
    keys = choice_keys()
    choices = {k: v for k, (_, v) in unit.choices.items()}
    out: list[Option] = []
    for method in dict.fromkeys(keys[k] for k in choices):
        spec = METHODS[method].choices
        modifiers = [k for k in choices if keys[k] == method and not spec[k].trigger]
        for trigger in (k for k in choices if keys[k] == method and spec[k].trigger):
            for value in choices[trigger]:
                if value == spec[trigger].neutral:
                    continue
                for combo in itertools.product(*(choices[m] for m in modifiers)):
                    out.append(Option(unit.label, unit.layers, ((trigger, value), *zip(modifiers, combo))))
    return out


def scan_options(space: Space, layer_names: list[str]) -> list[Option]:
    """Every option the space allows (`unit_options`), unit by unit in model order."""
    return [opt for unit in units_of(space, layer_names) for opt in unit_options(unit)]


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
        self._log = JsonlLog(Path(folder) / f"{model_hash[:16]}-{audio_hash[:16]}.jsonl")
        self.path = self._log.path
        self.rows: dict[str, dict] = {row["key"]: row for row in self._log.rows()
                                      if row.get("version") == SCAN_VERSION and "key" in row}

    def add(self, row: dict) -> None:
        self._log.append(row)
        self.rows[row["key"]] = row


class DevScorer:
    """The dev utterances options are scored on: their audio, and the base's posteriors and
    greedy WER, computed once and shared by the scan, its additivity check and the surrogate."""

    def __init__(self, base: nn.Module, model_dir: Path, dev: list) -> None:
        from ..objectives import DecoderConfig, build_decoder, load_waves

        if not dev:
            raise UserError("no dev utterances to scan on")
        self.utterances = len(dev)
        self.waves, self.refs = load_waves(dev)
        self._greedy = build_decoder(Path(model_dir), DecoderConfig.from_dict({"kind": "greedy"}))
        self.teacher, self.base_wer = self.score(base)

    def wer(self, lps: list[np.ndarray]) -> float:
        from ..objectives import wer

        return wer(self.refs, [self._greedy(torch.from_numpy(lp)) for lp in lps])

    def score(self, model: nn.Module) -> tuple[list[np.ndarray], float]:
        """`model`'s (T', V) log-probabilities per utterance and its greedy WER."""
        from ..objectives import emissions

        lps = emissions(model, self.waves, batch_seconds=0)  # one at a time: padding would change them
        return lps, self.wer(lps)


def scan(base: nn.Module, model_dir: Path, options: list[Option], dev: list, cache_dir: Path,
         kd_data: Callable[[], tuple[list, list]] | None = None,
         progress: Callable[[int, int, dict], None] | None = None, costs: OptionCost | None = None,
         scorer: DevScorer | None = None) -> dict:
    """Measure every option on the dev utterances `dev` (rows already in the cache are read, not
    re-run). `kd_data()` gives training data for an option that needs it (GPTQ's calibration,
    the taylor criterion); without it such an option is reported as skipped. `costs` adds each
    option's stored-bytes and predicted-latency change (`OptionCost`). `scorer`: `dev`'s
    `DevScorer`, when the caller has it."""
    t0 = time.perf_counter()
    scorer = scorer or DevScorer(base, model_dir, dev)
    teacher, base_wer, score = scorer.teacher, scorer.base_wer, scorer.score
    cache = ScanCache(cache_dir, model_sha256(model_dir), _audio_sha256(scorer.waves))
    data: tuple[list, list] | None = None
    rows: list[dict] = []
    cached, new_seconds = 0, 0.0
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
            new_seconds += row["seconds"]
        rows.append(row)
        if progress:
            progress(i + 1, len(options), row)
    return {"version": SCAN_VERSION, "model": str(model_dir), "model_sha256": model_sha256(model_dir),
            "utterances": len(dev), "base_wer": base_wer, "rows": rows, "cache": str(cache.path),
            "seconds": round(time.perf_counter() - t0, 1), "cached": cached,
            "option_seconds": round(sum(r["seconds"] for r in rows), 1),  # measured now and before
            "new_seconds": round(new_seconds, 1)}


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
    from ..compression import discover_layers
    from ..hardware import load_profiles
    from ..data import corpus_split
    from ..models import load_model
    from ._space import check_against_model, load_space

    from ._additivity import additivity
    from ._jsonl import kd_loader

    if utterances < 1:
        raise UserError(f"--utterances {utterances} must be at least 1")
    if check < 0:
        raise UserError(f"--check {check} must not be negative")
    if kd_utterances < 0:
        raise UserError(f"--kd-utterances {kd_utterances} must not be negative")
    space_path = resolve("space", Path(space))
    sp = load_space(space_path)
    base = load_model(model)
    names = [layer.name for layer in discover_layers(base)]
    check_against_model(sp, names)
    dev = corpus_split(corpus, "dev", "dev utterances to scan on")
    kd = kd_loader(corpus, kd_utterances)
    options = scan_options(sp, names)
    costs = OptionCost(base, load_profiles(Path(profiles or profiles_dir()), sp.profiles) if latency else {})
    scorer = DevScorer(base, Path(model), dev[:utterances])
    result = scan(base, Path(model), options, dev[:utterances], Path(cache_dir), kd, progress,
                  costs, scorer)
    result |= {"space": str(space_path), "base_bytes": costs.base_bytes, "base_ms": costs.base_ms,
               "base_onnx_bytes": costs.base_onnx_bytes,
               "exports": costs.exports}
    result["additivity"] = additivity(base, Path(model), result, options, dev[:utterances], check,
                                      kd_data=kd, costs=costs,
                                      scorer=scorer) if check else {"draws": 0}
    if tracking_uri:
        from ._sensitivity_report import log_scan

        result["run_id"] = log_scan(result, tracking_uri, study or space_path.stem)
    return result

