"""A finalist as a recipe anyone can rebuild: its policy, its recovery, the base model and the
corpus it was built from, and the figures the bench measured for it.

`asrcompress compress --recipe FILE --out DIR` replays what the finalists stage did for that
candidate, from the base model and the corpus alone: compress with the same calibration data,
then distil rung by rung with the same seeds, learning-rate schedule and carried optimizer
state, up to the rung whose model was kept (`best_steps`). On the same machine and thread count
the weights come out identical; elsewhere they differ by float reassociation only. The recipe
checks the base model's sha256 and the corpus's manifests, so a rebuild from other inputs is
refused by name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import yaml

from ..errors import UserError

RECIPE_KIND = "asrcompress-recipe"
RECIPE_VERSION = 1
RECOVERY_FIELDS = ("rungs", "best_steps", "lr", "warmup", "batch_seconds", "seed", "kd_utterances")
# How the learning rate runs over the rungs. "per-rung": each rung its own warm-up + cosine to 0,
# so every rung ends, and is judged, at a learning rate near 0; "single": one warm-up + cosine over
# the last rung, so the first rungs are judged at full rate (recipes written before `schedule`
# was recorded used it). On the bench's candidates at 100 steps, per-rung took dev KL from 0.143
# to 0.072 (cand-03) and 0.154 to about 0.12 (cand-06), and left a structural one alike (docs/search.md).
SCHEDULES = ("per-rung", "single")


def rung_seed(seed: int, r: int) -> int:
    """The distillation batch-order seed of rung `r` (0-based) of a finalist run."""
    return seed + 1000 * (r + 1)


def finalist_kd(rungs: tuple[int, ...], lr: float, warmup: float):
    """The distillation settings every finalist follows, for its steps in all (the last rung's)."""
    from ..compression import DistillConfig

    return DistillConfig(steps=rungs[-1], lr=lr, warmup=warmup, schedule="cosine")


def rung_slice(rungs: tuple[int, ...], r: int, done: int, lr: float, warmup: float,
               schedule: str = "per-rung") -> tuple:
    """Rung `r` (0-based) of a finalist's recovery, `done` steps already run: (its DistillConfig,
    its `offset` and `total` on the learning-rate schedule), as `distill` takes them."""
    if schedule not in SCHEDULES:
        raise UserError(f"schedule {schedule!r} is not one of {', '.join(SCHEDULES)}")
    steps = rungs[r] - done
    if schedule == "single":  # steps done..rungs[r] of one cosine over the last rung
        return replace(finalist_kd(rungs, lr, warmup), steps=steps), done, rungs[-1]
    return finalist_kd((steps,), lr, warmup), 0, steps  # this rung's own warm-up and decay to 0


def _corpus_recipe(corpus: Path) -> dict:
    """How the corpus was synthesised (its corpus.json), or {} for a corpus brought by the user."""
    meta = corpus / "corpus.json"
    if not meta.is_file():
        return {}
    doc = json.loads(meta.read_text())
    counts = {k: v["utterances"] for k, v in doc.get("splits", {}).items()}
    return {"size": doc.get("size"), "seed": doc.get("seed"), "generator": doc.get("generator_version", 1),
            "counts": counts}


def recipe_of(finalists: dict, name: str, figures: dict | None = None) -> dict:
    """The recipe of finalist `name` of a finalists.json document (`figures`: what was measured)."""
    from ..compression import Policy
    from ._settings import corpus_fingerprint, model_sha256

    row = next((r for r in finalists["finalists"] if r["name"] == name), None)
    if row is None or not row.get("finalist"):
        raise UserError(f"{finalists['candidates']}: {name!r} is not a finalist")
    folder = Path(finalists["candidates"])
    policy = Policy.load(folder / "finalists" / name / "policy.yaml")
    model, corpus = Path(finalists["model"]), Path(finalists["corpus"])
    return {
        "kind": RECIPE_KIND, "version": RECIPE_VERSION, "name": name,
        "base_model": {"path": str(model), "sha256": model_sha256(model)},
        "corpus": {"path": str(corpus), "fingerprint": corpus_fingerprint(corpus), **_corpus_recipe(corpus)},
        "policy": policy.to_dict(),
        "recovery": {"rungs": list(finalists["rungs"]), "best_steps": int(row["best_steps"]),
                     "lr": finalists["lr"], "warmup": finalists["warmup"],
                     "batch_seconds": finalists["batch_seconds"], "seed": finalists["seed"],
                     "kd_utterances": finalists["kd_utterances"],
                     "schedule": finalists.get("schedule", "single")},
        "measured": figures or {},
    }


def write_recipe(path: Path, recipe: dict) -> None:
    from .._outputs import write_text

    header = (f"# Rebuild: asrcompress compress --recipe {path.name} --out DIR  (from the shipped base model and\n"
              "# the built-in corpus; `measured` is what the bench measured for this point)\n")
    write_text(Path(path), header + yaml.safe_dump(recipe, sort_keys=False))


def load_recipe(path: Path) -> dict:
    """A recipe file, checked field by field (one UserError naming the file and the field)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: recipe not found")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, dict) or doc.get("kind") != RECIPE_KIND:
        raise UserError(f"{path}: not an asrcompress recipe (kind: {RECIPE_KIND} missing)")
    if doc.get("version") != RECIPE_VERSION:
        raise UserError(f"{path}: recipe version {doc.get('version')!r}; this asrcompress reads {RECIPE_VERSION}")
    for section in ("base_model", "corpus", "policy", "recovery"):
        if not isinstance(doc.get(section), dict):
            raise UserError(f"{path}: field '{section}' is missing or not a mapping")
    rec = doc["recovery"]
    for f in RECOVERY_FIELDS:
        if f not in rec:
            raise UserError(f"{path}: field 'recovery.{f}' is missing")
    rungs = rec["rungs"]
    if not (isinstance(rungs, list) and rungs and all(isinstance(r, int) and r > 0 for r in rungs)
            and rungs == sorted(set(rungs))):
        raise UserError(f"{path}: field 'recovery.rungs' must be increasing positive step counts")
    if rec["best_steps"] not in (0, *rungs):
        raise UserError(f"{path}: field 'recovery.best_steps' ({rec['best_steps']}) is not 0 or one of the rungs")
    if rec.setdefault("schedule", "single") not in SCHEDULES:  # absent: a recipe from before it was recorded
        raise UserError(f"{path}: field 'recovery.schedule' ({rec['schedule']!r}) is not one of {', '.join(SCHEDULES)}")
    return doc


def check_inputs(recipe: dict, source: Path, model: Path, corpus: Path) -> None:
    """The base model and corpus must be the recipe's, by content."""
    from ._settings import corpus_fingerprint, model_sha256

    if model_sha256(model) != recipe["base_model"]["sha256"]:
        raise UserError(f"{source}: the base model at {model} is not the recipe's "
                        f"(sha256 {recipe['base_model']['sha256'][:12]}); give it with --model")
    if corpus_fingerprint(corpus) != recipe["corpus"]["fingerprint"]:
        raise UserError(f"{source}: the corpus at {corpus} is not the recipe's (its manifests differ); "
                        "give the recipe's corpus with --corpus")


def rebuild(recipe: dict, base, corpus: Path, log: Callable[[str], None] = print):
    """Replay the recipe's compression and recovery from the loaded base model (left untouched);
    returns (model, states, policy with its steps)."""
    from ..compression import Policy, Recovery, compress_and_recover, distill, load_kd_data

    rec = recipe["recovery"]
    rungs = tuple(rec["rungs"])
    waves, targets = load_kd_data(corpus, rec["kd_utterances"], rec["seed"])
    policy = Policy.from_dict(recipe["policy"], source="recipe")
    built = compress_and_recover(base, replace(policy, distill=None), (waves, targets),
                                 Recovery(batch_seconds=rec["batch_seconds"], seed=rec["seed"]))
    kd = finalist_kd(rungs, rec["lr"], rec["warmup"])
    steps, opt_state = 0, None
    for r, rung in enumerate(rungs):
        if rung > rec["best_steps"]:
            break
        log(f"rung {r + 1}: distilling to {rung} steps")
        cfg, offset, total = rung_slice(rungs, r, steps, rec["lr"], rec["warmup"], rec.get("schedule", "single"))
        res = distill(built.model, base, built.states, waves, targets, cfg, batch_seconds=rec["batch_seconds"],
                      seed=rung_seed(rec["seed"], r), offset=offset, total=total, opt_state=opt_state)
        steps, opt_state = rung, res["opt_state"]
    kept = replace(policy, distill=replace(kd, steps=steps)) if steps else replace(policy, distill=None)
    return built.model, built.states, kept
