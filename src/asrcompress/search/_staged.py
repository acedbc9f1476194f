"""The staged search, the default strategy of `asrcompress search` (docs/search.md).

One command walks the stages `propose` and `finalists` run separately: the sensitivity scan
(cached by model and audio), the surrogate study and its candidates scored without recovery
(`run_propose`), then the candidates' recovery by successive halving, the finalists timed with
the base and reported on test (`run_finalists`). Everything lands under the study's folder
(`mlruns/studies/STUDY/candidates/`); the finalists' Optuna study is the study the user named,
so `front`, `export`, `dashboard` and `ui` find it by that name, and its MLflow runs carry the
Pareto tags a one-stage study's trials carry.

Resuming: re-running the command goes on from the last finished stage. The scan's rows are
cached as they finish; a stage stopped half-way is redone from its start (its partial folder
and study are ours, under the study's folder, and are replaced); a finalists run stopped after
its training only times, marks the front and reports on test again.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import optuna

from ..errors import UserError
from ._settings import STAGED, STAGED_RECORD, STRATEGY_ATTR, SETTINGS_ATTR, SearchConfig, settings_for

FOLDER = "candidates"  # under the study's workdir: propose's --out, then finalists'
SCAN_CACHE = "mlruns/sensitivity"  # the scan's rows, by model and audio hash (cfg["scan_cache"] may move it)
SCAN_KD_UTTERANCES = 32  # training utterances the scan calibrates on (GPTQ, the taylor criterion)


@dataclass(frozen=True)
class StagedOptions:
    """The staged strategy's own settings, kept with the study (a resume may not change them)."""

    proposals: int = 2000  # surrogate policies the surrogate study scores
    sampler: str = "nsga2"  # the surrogate study's: NSGA-II seeded with knapsack picks, or random (for comparison)
    candidates: int = 12  # most candidates picked across the size and latency budgets
    rungs: tuple[int, ...] = (100, 300, 900)  # distillation steps done in all by each rung's end
    lr: float = 2e-4
    scan_utterances: int = 16  # dev utterances the sensitivity scan scores each option on
    repeats: int = 20  # timed runs per model and input length

    def to_dict(self) -> dict:
        return {**asdict(self), "rungs": list(self.rungs)}

    def check(self) -> "StagedOptions":
        """Itself, or a UserError naming the first flag out of range."""
        _check_options(self)
        return self

    @classmethod
    def from_dict(cls, doc: dict) -> "StagedOptions":
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if k == "rungs" else v for k, v in doc.items() if k in known})


def staged_scan(model: Path, corpus: Path, space: Path, opts: StagedOptions, cache_dir: Path,
                profiles: Path | None = None) -> dict:
    """The sensitivity scan a staged search with `opts` runs first, with its arguments: run ahead
    into `cache_dir` (the search's `cfg["scan_cache"]`), every option is then read from the cache."""
    from ._sensitivity import run_sensitivity

    return run_sensitivity(Path(model), Path(corpus), Path(space), opts.scan_utterances, SCAN_KD_UTTERANCES,
                           Path(cache_dir), None, None, None, 0, profiles, True)


def _check_options(opts: StagedOptions) -> None:
    for flag, value, least in (("--proposals", opts.proposals, 1), ("--candidates", opts.candidates, 1),
                               ("--repeats", opts.repeats, 1)):
        if value < least:
            raise UserError(f"{flag} {value} must be at least {least}")
    if opts.sampler not in ("nsga2", "random"):
        raise UserError(f"--sampler {opts.sampler!r} is not one of nsga2, random (the staged search's proposals)")
    if not opts.rungs or any(b <= a for a, b in zip((0, *opts.rungs), opts.rungs)):
        raise UserError(f"--rungs {','.join(map(str, opts.rungs)) or '(none)'} must be increasing positive step "
                        "counts")
    if not opts.lr > 0:
        raise UserError(f"--lr {opts.lr} must be positive")


def _record_path(cfg: dict) -> Path:
    return Path(cfg["workdir"]) / STAGED_RECORD


def _studies(url: str) -> dict[str, optuna.study.StudySummary]:
    from ._study import open_storage

    if url.startswith("journal:") and not Path(url.removeprefix("journal:")).exists():
        return {}  # not created here: bad input further on must leave nothing behind
    return {s.study_name: s for s in optuna.get_all_study_summaries(open_storage(url))}


def _drop(url: str, name: str, owned: Callable[[dict], bool]) -> None:
    """Delete study `name`, which a stage stopped half-way left (the stage is run again); a study
    of that name that is not the stage's (`owned` by its user attributes) is refused instead."""
    from ._study import open_storage

    if name not in _studies(url):
        return
    storage = open_storage(url)
    if not owned(optuna.load_study(study_name=name, storage=storage).user_attrs):
        raise UserError(f"study {name!r} in {url} is not this staged search's; pick another --study")
    optuna.delete_study(study_name=name, storage=storage)


def surrogate_storage(cfg: dict) -> str:
    """The surrogate study's storage: the user's --storage, else its own journal beside the study's."""
    from ._study import default_storage

    return default_storage(f"{cfg['study']}-surrogate") if cfg["storage"] == default_storage(cfg["study"]) \
        else cfg["storage"]


def _open_record(cfg: dict, opts: StagedOptions, given: set[str]) -> tuple[SearchConfig, StagedOptions]:
    """The study's settings and options: new ones written once, or the stored ones with what the
    user gave checked against them (refused with one line, naming it, if a fixed one differs)."""
    from .._outputs import refuse_overlap
    from ._preflight import preflight
    from ._run import check_inputs

    path = _record_path(cfg)
    stored = json.loads(path.read_text()) if path.is_file() else None
    if stored is None:
        existing = _studies(cfg["storage"]).get(cfg["study"])
        if existing is not None:
            raise UserError(f"study {cfg['study']!r} exists in {cfg['storage']} and was not made by the staged "
                            "strategy; resume it with --strategy one-stage, or pick another --study")
        if cfg.get("space") is None:
            raise UserError(f"study {cfg['study']!r} not found; give --space to start it")
        settings = settings_for(cfg, None)
        _check_options(opts)
    else:
        settings = settings_for(cfg, SearchConfig.from_dict(stored["settings"]))
        kept = StagedOptions.from_dict(stored["options"])
        if stored.get("seed") is not None:  # the candidates and the finalists' batches came from it
            if "seed" in given and cfg["seed"] != stored["seed"]:
                raise UserError(f"study {cfg['study']!r}: --seed {cfg['seed']} differs from the study's "
                                f"{stored['seed']}; resume without it, or pick another --study")
            cfg["seed"] = stored["seed"]
        for name in given - {"seed"}:
            if getattr(opts, name) != getattr(kept, name):
                flag = "--" + name.replace("_", "-")
                raise UserError(f"study {cfg['study']!r}: {flag} {_show(getattr(opts, name))} differs from the "
                                f"study's {_show(getattr(kept, name))}; resume without it, or pick another --study")
        opts = kept
    check_inputs(settings)
    refuse_overlap(Path(settings.workdir), {"model": Path(settings.model), "corpus": Path(settings.corpus)},
                   "the study's trial folder")
    preflight(cfg | {"budget": 2 * opts.candidates})  # each candidate keeps an .onnx and a model folder
    if stored is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"strategy": STAGED, "settings": settings.to_dict(), "options": opts.to_dict(),
                                    "seed": cfg["seed"]}, indent=1))
    return settings, opts


def _show(v: object) -> str:
    return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)


def run_staged(cfg: dict, opts: StagedOptions = StagedOptions(), given: set[str] = frozenset(),
               progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Run (or resume) the staged search `cfg` names (`driver_config`'s settings; `given`: the
    staged options the user named, and "seed" if --seed was). Returns the summary: the stages'
    seconds, the finalists on the front with their test figures, and the knee."""
    from . import _finalists
    from ._finalists import finish_finalists, finished, run_finalists
    from ._propose import run_propose

    say = progress or (lambda stage, done, total: None)
    t0 = time.perf_counter()
    settings, opts = _open_record(cfg, opts, set(given))
    workdir = Path(settings.workdir)
    folder = workdir / FOLDER
    space_file = workdir / f"{settings.space_name}.yaml"  # the study's own space, as stored
    if not settings.space_yaml:
        raise UserError(f"study {cfg['study']!r} stored no space YAML; start a new --study")
    space_file.write_text(settings.space_yaml)
    seconds = {}
    constraints = settings.space().constraints  # applied to the finalists' front (those staged measures)
    if not (folder / "candidates.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        _drop(surrogate_storage(cfg), f"{cfg['study']}-surrogate", lambda attrs: "seeds" in attrs)
        t = time.perf_counter()
        run_propose(Path(settings.model), Path(settings.corpus), space_file, folder, opts.scan_utterances,
                    SCAN_KD_UTTERANCES, Path(cfg.get("scan_cache") or SCAN_CACHE), opts.proposals, 50,
                    opts.candidates, cfg["seed"],
                    settings.dev_utterances, True, surrogate_storage(cfg), f"{cfg['study']}-surrogate",
                    Path(cfg["profiles"]), say, opts.sampler)
        seconds["propose"] = round(time.perf_counter() - t, 1)
    path = folder / "finalists.json"
    if path.is_file():
        doc = json.loads(path.read_text())
        if not finished(doc):
            doc = finish_finalists(doc, folder, say, True, opts.repeats, constraints=constraints)
        else:  # the front again, under the space's constraints (cheap; a study from before they applied)
            _finalists.mark_front(doc, _finalists.ms_axis(doc), constraints)
            path.write_text(json.dumps(doc, indent=1))
    else:
        shutil.rmtree(folder / "finalists", ignore_errors=True)
        _drop(cfg["storage"], cfg["study"], lambda attrs: attrs.get("candidates") == str(folder.resolve()))
        t = time.perf_counter()
        doc = run_finalists(folder, opts.rungs, settings.kd_utterances, opts.lr, 0.05, 16.0, cfg["seed"],
                            cfg["storage"], cfg["study"], Path(cfg["profiles"]), say, True, opts.repeats,
                            min_kl=_finalists.MIN_KL, constraints=constraints, device=cfg.get("device", "cpu"))
        seconds["finalists"] = round(time.perf_counter() - t, 1)
    say("summary", 0, 1)
    study = _mark(cfg, settings, doc)
    from ._staged_report import log_finalists

    rows = log_finalists(study, doc, settings.tracking_uri or cfg["tracking_uri"])
    return {"study": cfg["study"], "strategy": STAGED, "seconds": seconds,
            "wall_seconds": round(time.perf_counter() - t0, 1), "folder": str(folder),
            "front": [r for r in rows if r["front"]], "finalists": len(rows), "knee": doc.get("knee"),
            "test": doc.get("test", {}), "base": doc["base"], "constraints": doc.get("constraints", {})}


def _mark(cfg: dict, settings: SearchConfig, doc: dict) -> optuna.Study:
    """The finalists' study, marked as a staged study with the settings and axes `export` and
    `front` read."""
    from ._summary import load_study

    study = load_study(cfg["storage"], cfg["study"])
    study.set_user_attr(STRATEGY_ATTR, STAGED)
    study.set_user_attr(SETTINGS_ATTR, settings.to_dict())
    study.set_user_attr("objectives", ["wer", "size", f"latency@{doc['profile']}"])
    study.set_user_attr("workdir", settings.workdir)
    study.set_user_attr("finalists", str(Path(settings.workdir) / FOLDER / "finalists.json"))
    return study
