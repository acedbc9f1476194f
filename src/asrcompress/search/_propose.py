"""`asrcompress propose`: the search's first three stages in one command. The sensitivity scan
(cached), the surrogate study over thousands of policies, the picks across size and latency
budgets, and their real scores without recovery (ONNX), written to a new folder."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError


def _check(trials: int, population: int, candidates: int, dev_utterances: int, out: Path) -> None:
    for flag, value, least in (("--trials", trials, 1), ("--population", population, 2),
                               ("--candidates", candidates, 1), ("--dev-utterances", dev_utterances, 0)):
        if value < least:
            raise UserError(f"{flag} {value} must be at least {least}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists and is not an empty folder; give a new --out (nothing is overwritten)")


def _free_storage(storage_url: str, name: str) -> None:
    """Refuse up front a storage that holds a study `name` (a journal not yet written holds
    none, and is not created here: bad input further on must leave nothing behind)."""
    import optuna

    from ._study import open_storage

    if storage_url.startswith("journal:") and not Path(storage_url.removeprefix("journal:")).exists():
        return
    storage = open_storage(storage_url)
    if name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        raise UserError(f"study {name!r} already exists in {storage_url}; pick another --study")


def run_propose(model: Path, corpus: Path, space: Path, out: Path, utterances: int = 16, kd_utterances: int = 32,
                cache_dir: Path = Path("mlruns/sensitivity"), trials: int = 2000, population: int = 50,
                candidates: int = 24, seed: int = 0, dev_utterances: int = 0, score: bool = True,
                storage: str | None = None, study: str | None = None, profiles: Path | None = None,
                progress: Callable[[str, int, int], None] | None = None, sampler: str = "nsga2") -> dict:
    """Scan `space` on `model` (`run_sensitivity`, cached: only what is new is measured), run
    the surrogate study for `trials` (`sampler` NSGA-II with `population`, or random; `seed`), pick up to `candidates`
    across the budget sweep and, with `score`, measure each on the first `dev_utterances` of
    the dev split (0: all) in ONNX. Writes `out`/candidates.json and a folder per candidate
    (policy.yaml, model.onnx); copies the study to `storage` (default: the journal named by
    `study`, itself by default SPACE-SAMPLER-seedSEED-OUT). Returns what candidates.json holds."""
    import optuna

    from ..compression import discover_layers
    from ..data import corpus_split
    from ..models import load_model
    from ._additivity import UnitCache, kept_fractions, layer_weights, onnx_rest, unit_bytes
    from ._candidates import score_candidates, surrogate_error
    from ._jsonl import kd_loader
    from ._option_cost import OptionCost
    from ._sensitivity import DevScorer, run_sensitivity
    from ._space import load_space
    from ._study import default_storage
    from ._surrogate import Surrogate, budget_picks, surrogate_hypervolume, surrogate_study

    out = Path(out)
    if sampler not in ("nsga2", "random"):
        raise UserError(f"--sampler {sampler!r} is not one of nsga2, random")
    _check(trials, population, candidates, dev_utterances, out)
    from .._shipped import resolve

    # a new --out is a new study by default, so re-running with another folder just works
    name = study or f"{load_space(resolve('space', Path(space))).name}-{sampler}-seed{seed}-{out.resolve().name}"
    storage_url = storage or default_storage(name)
    _free_storage(storage_url, name)
    say = progress or (lambda stage, done, total: None)
    t0 = time.perf_counter()
    result = run_sensitivity(model, corpus, space, utterances, kd_utterances, cache_dir, None, None,
                             lambda done, total, row: say("scan", done, total), 0, profiles, True)
    scan_s = time.perf_counter() - t0
    sp = load_space(Path(result["space"]))
    base = load_model(model)
    names = [layer.name for layer in discover_layers(base)]
    kd = kd_loader(corpus, kd_utterances)

    t1 = time.perf_counter()
    # prices of stacked options, beside the scan's cache file (its name holds the model's and audio's hashes)
    from ..hardware import load_profiles
    from .._shipped import profiles_dir
    from ._sensitivity import scan_options

    profs = load_profiles(Path(profiles or profiles_dir()), sp.profiles)
    priced = OptionCost(base, profs)
    rest = onnx_rest(base, priced, scan_options(sp, names), {r["key"]: r for r in result["rows"]}, kd)
    sizes, unit_cache = OptionCost(base, {}), UnitCache(Path(result["cache"]).with_suffix(".units.jsonl"))
    onnx_cache = UnitCache(Path(result["cache"]).with_suffix(".units-onnx.jsonl"))  # stacked cuts only
    sur = Surrogate(sp, names, result["rows"], result["base_bytes"], result["base_ms"],
                    lambda opts: unit_bytes(base, sizes, opts, unit_cache, kd),
                    lambda opt: kept_fractions(base, opt, kd), result["base_onnx_bytes"], rest, layer_weights(base),
                    lambda opts: unit_bytes(base, priced, opts, onnx_cache, kd, onnx=True))
    st = surrogate_study(sur, trials, population, seed, name, lambda done, total: say("surrogate", done, total),
                         sampler)
    surrogate_s = time.perf_counter() - t1
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # for optuna-dashboard
    try:
        from ._study import open_storage

        optuna.copy_study(from_study_name=st.study_name, from_storage=st._storage,
                          to_storage=open_storage(storage_url), to_study_name=name)
    finally:
        optuna.logging.set_verbosity(verbosity)
    picks = budget_picks(st, sur, candidates)
    rows: list[dict] = []
    t2 = time.perf_counter()
    if score:
        dev = corpus_split(corpus, "dev", "dev utterances to score candidates on")
        scorer = DevScorer(base, Path(model), dev[:dev_utterances] if dev_utterances else dev)
        out.mkdir(parents=True, exist_ok=True)
        rows = score_candidates(base, picks, scorer, profs, out, kd,
                                lambda done, total, row: say("score", done, total))
    doc = {
        "version": 1, "model": str(model), "corpus": str(corpus), "space": result["space"],
        "base_bytes": result["base_bytes"], "base_onnx_bytes": result["base_onnx_bytes"], "onnx_rest": rest,
        "base_ms": result["base_ms"],
        "profile": sur.profile,
        "scan": {"options": len(result["rows"]), "utterances": result["utterances"], "cached": result["cached"],
                 "seconds": round(scan_s, 1), "cache": result["cache"]},
        "surrogate": {"trials": trials, "sampler": sampler, "population": population, "seed": seed,
                      "hypervolume": surrogate_hypervolume(st, sur), "seeds": st.user_attrs["seeds"],
                      "seeds_hypervolume": surrogate_hypervolume(st, sur, st.user_attrs["seeds"]),
                      "front": len(st.best_trials),
                      "front_from_seeds": sum(t.number < st.user_attrs["seeds"] for t in st.best_trials),
                      "policies_scored": sur.scored,
                      "duplicates": sur.duplicates, "units_priced": len(unit_cache) - unit_cache.loaded,
                      "units_cached": unit_cache.loaded,
                      "resizing_options": len(sur.resize),
                      "seconds": round(surrogate_s, 1), "study": name, "storage": storage_url},
        "picks": [{"trial": p.trial, "budgets": list(p.budgets), "pred_kl": p.prediction.kl,
                   "pred_bytes": p.prediction.bytes, "pred_onnx_bytes": p.prediction.onnx_bytes,
                   **{f"pred_ms@{k}": v for k, v in p.prediction.ms.items()},
                   "policy": p.prediction.policy()} for p in picks],
        "candidates": rows, "score_seconds": round(time.perf_counter() - t2, 1),
        "dev_utterances": len(scorer.waves) if score else 0,
        "surrogate_error": surrogate_error(rows, list(result["base_ms"])) if score else {},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "candidates.json").write_text(json.dumps(doc, indent=1))
    return doc
