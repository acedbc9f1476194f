"""The search's fourth and fifth stages: the candidates' real recovery by successive halving,
then the finalists timed quietly and reported on test.

`asrcompress finalists --candidates DIR` takes the folder `propose` wrote. The distillation
budget follows the damage: a policy that only quantizes (with its rounding), or one within
`MIN_KL` of the base before recovery, is kept as scored, with 0 steps; every other candidate
is distilled rung by rung (by default 100, then 300, then 900 steps in all). Each rung
continues the same run with its own warm-up + cosine decay to 0 (`schedule="per-rung"`), so a
candidate is judged after each rung at a learning rate near 0, not in the middle of one long
schedule; AdamW's moments are carried over and the teacher's outputs cached once for all
candidates (no teacher forward per step). `schedule="single"` is the earlier one: one warm-up
+ cosine over the last rung's steps.

After each rung every candidate reports its dev KL (`trial.report`, so a stopped one ranks by
how far it got), and only the budget winners go on: for every size and latency budget of the
propose stage (and the smallest and fastest), the candidate within it with the least KL so
far, quantization-only candidates included. Only candidates whose dev WER is within the
space's WER constraint, loosened by `WER_SLACK`, compete: one far over it cannot reach the
front, and training it is what made the finalists overrun the CPU-hour. Of the trained winners
at most 1/`ETA` go on (those winning the most budgets first), so each rung at least halves.
The better of before and after distillation is kept. The candidates left after the last rung
are exported and measured in ONNX.
"""

from __future__ import annotations

import copy
import json
from time import perf_counter as clock
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from torch import nn

from .._cpu import cpu_seconds
from ..errors import UserError
from ._recipe import SCHEDULES, finalist_kd, rung_seed, rung_slice
from ._halving import ETA, MIN_KL, RUNGS, WER_SLACK, quantization_only, survivors, winners


@dataclass
class _Run:
    """One candidate's recovery in progress."""

    name: str
    trial: object
    model: nn.Module
    states: dict
    figures: dict  # onnx_bytes and ms from the candidate's measured row (recovery does not change them)
    kl: float
    wer: float
    steps: int = 0
    opt_state: dict | None = None
    best: dict = field(default_factory=dict)  # state_dict of the best-scoring point so far
    best_steps: int = 0
    history: list = field(default_factory=list)


def _check(folder: Path, rungs: tuple[int, ...], kd_utterances: int) -> dict:
    if not rungs or any(b <= a for a, b in zip((0, *rungs), rungs)):
        raise UserError(f"--rungs {','.join(map(str, rungs)) or '(none)'} must be increasing positive step counts")
    if kd_utterances < 0:
        raise UserError(f"--kd-utterances {kd_utterances} must be 0 (the whole train split) or more")
    path = Path(folder) / "candidates.json"
    if not path.is_file():
        raise UserError(f"{path}: not found; give the --out folder of asrcompress propose")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(doc, dict) or not doc.get("candidates"):
        raise UserError(f"{path}: holds no measured candidates (was propose run with --no-score?)")
    if (Path(folder) / "finalists.json").exists() or (Path(folder) / "finalists").exists():
        raise UserError(f"{folder}: holds finalists already; propose into a new folder (nothing is overwritten)")
    return doc


def time_finalists(doc: dict, folder: Path, repeats: int = 20, seconds: tuple[float, ...] = (8.0, 2.0)) -> None:
    """The search's fifth stage, after all training: the base's and every finalist's .onnx timed
    in one interleaved loop on 1 thread (`measure_latency`), with their peak memory; adds
    `measured_ms@Ns` and `peak_mb` to each row of `doc` (the base's too), beside the predicted ms."""
    from ..hardware import measure_latency, peak_memory_mb

    rows = [doc["base"], *(r for r in doc["finalists"] if r["finalist"])]
    paths = [Path(folder) / "base" / "model.onnx", *(Path(r["onnx"]) for r in rows[1:])]
    times = measure_latency(paths, 1, list(seconds), repeats=repeats)
    for row, path, t in zip(rows, paths, times):
        row |= {f"measured_ms@{s:g}s": ms for s, ms in t.items()}
        row["peak_mb"] = peak_memory_mb(path, 1, [max(seconds)])
    doc["timing"] = {"threads": 1, "repeats": repeats, "seconds": list(seconds), "interleaved": True}


def report_on_test(doc: dict, folder: Path, manifest: Path, limit: int = 0) -> None:
    """Report on test, after selecting on dev: the base's and each finalist's .onnx on the first
    `limit` utterances of `manifest` (0: all), decoded with the model's own (deployed) decoder
    and greedy; per decoder the WER, the ratio to the base's and its paired bootstrap 95%
    interval (`wer_ratio_ci`), in each row's `test`."""
    from ..data import load_manifest
    from ..export import OnnxAcousticModel
    from ..models import read_config
    from ..objectives import DecoderConfig, decode_all, load_waves, utterance_errors, wer_ratio_ci
    from ..models import load_model, features_of

    model_dir = Path(doc["model"])
    utts = load_manifest(Path(manifest))[0]
    utts = utts[:limit] if limit else utts
    if not utts:
        raise UserError(f"{manifest}: no test utterances")
    waves, refs = load_waves(utts)
    words = [len(r.split()) for r in refs]
    own = DecoderConfig.from_dict(read_config(model_dir).get("decoder") or {"kind": "greedy"})
    decoders = {"deployed": own, "greedy": own.with_(kind="greedy")}
    spec = features_of(load_model(model_dir))
    rows = [doc["base"], *(r for r in doc["finalists"] if r["finalist"])]
    paths = [Path(folder) / "base" / "model.onnx", *(Path(r["onnx"]) for r in rows[1:])]
    errors = []
    for path in paths:
        lps = OnnxAcousticModel(path, spec, 2).emissions(waves)
        errors.append({k: utterance_errors(refs, decode_all(lps, model_dir, cfg, workers=2))
                       for k, cfg in decoders.items()})
    for row, err in zip(rows, errors):
        row["test"] = {}
        for k in decoders:
            ratio, (lo, hi) = wer_ratio_ci(errors[0][k], err[k], words)
            row["test"][k] = {"wer": sum(err[k]) / sum(words), "ratio": ratio, "ci95": [lo, hi]}
    doc["test"] = {"manifest": str(manifest), "utterances": len(utts), "words": sum(words),
                   "decoders": {k: v.to_dict() for k, v in decoders.items()}}


def mark_front(doc: dict, ms_key: str, constraints: tuple = ()) -> None:
    """Mark the finalists on the Pareto front of (dev greedy WER, .onnx bytes, `ms_key`), and
    its knee (the point closest to the ideal after min-max scaling). `constraints`: the space's
    (`Constraint`s); those on `wer` and on the profile's latency are applied (a finalist over a
    limit is marked infeasible and is not on the front), the others are listed as not applied."""
    from ._pareto import knee

    rows = [r for r in doc["finalists"] if r["finalist"]]
    keys = {"wer": "wer", f"latency@{doc['profile']}": ms_key}
    limits = {keys[c.objective]: c.limit({c.objective: doc["base"][keys[c.objective]]})
              for c in constraints if c.objective in keys}
    doc["constraints"] = {"applied": {k: v for k, v in limits.items()},
                          "not_applied": [c.objective for c in constraints if c.objective not in keys]}
    for r in rows:
        r["feasible"] = all(r[k] <= v for k, v in limits.items())
        r["front"] = False
    doc.pop("knee", None)
    rows = [r for r in rows if r["feasible"]]
    vals = [(r["wer"], r["onnx_bytes"], r[ms_key]) for r in rows]
    for r, v in zip(rows, vals):
        r["front"] = not any(all(a <= b for a, b in zip(u, v)) and u != v for u in vals)
    front = [r for r in rows if r["front"]]
    if front:
        k = front[knee([[r["wer"], r["onnx_bytes"], r[ms_key]] for r in front])]
        doc["knee"] = k["name"]
    doc["front_axes"] = ["wer", "onnx_bytes", ms_key]


def run_finalists(folder: Path, rungs: tuple[int, ...] = RUNGS, kd_utterances: int = 2000, lr: float = 2e-4,
                  warmup: float = 0.05, batch_seconds: float = 16.0, seed: int = 0, storage: str | None = None,
                  study: str | None = None, profiles: Path | None = None,
                  progress: Callable[[str, int, int], None] | None = None, time: bool = True,
                  repeats: int = 20, test_manifest: Path | None = None, test_utterances: int = 0,
                  min_kl: float = MIN_KL, constraints: tuple = (), device: str = "cpu",
                  schedule: str = "per-rung") -> dict:
    """Recover the candidates in `folder` (propose's --out) by successive halving over `rungs`
    (those that only quantize, or are within `min_kl` of the base, keep 0 steps),
    distilling on `kd_utterances` training utterances (0: all); writes `folder`/finalists.json and
    `folder`/finalists/NAME/{policy.yaml, model.onnx}, and records one trial per candidate in a
    single-objective Optuna study (dev KL; default name: the surrogate study's + "-finalists").
    With `time`, the base and the finalists are then timed interleaved (`time_finalists`,
    `repeats` runs each) and the front is marked on measured ms, else on predicted ms.
    The finalists are then scored on the test split (`test_manifest`, default the corpus's
    test.jsonl; `test_utterances`, 0: all) with both decoders (`report_on_test`).
    Distillation steps run on `device` ("cuda": a GPU); scoring, timing and export on the CPU.
    `schedule`: the learning rate's course over the rungs ("per-rung" or "single", `SCHEDULES`).
    Returns what finalists.json holds."""
    import optuna
    from optuna.trial import TrialState

    from ..compression import Policy, Recovery, TeacherCache, compress_and_recover, distill, load_kd_data
    from ..data import corpus_split
    from ..hardware import load_profiles
    from ..models import load_model
    from .._shipped import profiles_dir
    from ._candidates import measure_onnx
    from ._propose import _free_storage
    from ._sensitivity import DevScorer, frame_kl
    from ._space import load_space
    from ._study import default_storage, open_storage

    folder = Path(folder)
    rungs = tuple(int(r) for r in rungs)
    if schedule not in SCHEDULES:  # refused before anything is read or trained
        raise UserError(f"--schedule {schedule!r} is not one of {', '.join(SCHEDULES)}")
    doc = _check(folder, rungs, kd_utterances)
    name = study or f"{doc['surrogate']['study']}-finalists"
    storage_url = storage or default_storage(name)
    _free_storage(storage_url, name)
    say = progress or (lambda stage, done, total: None)
    t0 = clock()
    model_dir, corpus = Path(doc["model"]), Path(doc["corpus"])
    test_path = Path(test_manifest or corpus / "test.jsonl")
    if test_manifest and not test_path.is_file():
        raise UserError(f"{test_path}: not found (--test-manifest)")
    sp = load_space(Path(doc["space"]))
    profs = load_profiles(Path(profiles or profiles_dir()), sp.profiles)
    prof = doc["profile"]
    base = load_model(model_dir)
    dev = corpus_split(corpus, "dev", "dev utterances to score finalists on")
    scorer = DevScorer(base, model_dir, dev[:doc["dev_utterances"]] if doc["dev_utterances"] else dev)
    waves, targets = load_kd_data(corpus, kd_utterances or 10**9, seed)
    recovery = Recovery(batch_seconds=batch_seconds, seed=seed, device=device)
    kd = finalist_kd(rungs, lr, warmup)
    cache = TeacherCache(base, waves, batch_seconds)
    st = optuna.create_study(storage=open_storage(storage_url), study_name=name, direction="minimize")
    st.set_user_attr("candidates", str(folder.resolve()))
    st.set_user_attr("rungs", list(rungs))
    rows = {r["name"]: r for r in doc["candidates"]}
    base_row = rows.pop("base")
    base_onnx, base_ms = base_row["onnx_bytes"], base_row[f"ms@{prof}"]
    # the space's WER limit on dev, loosened by WER_SLACK: who may go on after a rung
    limits = [c.limit({"wer": base_row["wer"]}) for c in constraints if c.objective == "wer"]
    prune_limit = min(limits) * (1 + WER_SLACK) if limits else None

    fixed: list[dict] = []  # 0 steps (quantization only, or within min_kl): scored as built
    built_fixed: dict = {}  # their models, built here (on this stage's calibration data) and measured at the end
    runs: list[_Run] = []
    for i, (cname, row) in enumerate(rows.items()):
        say("build", i, len(rows))
        policy = Policy.load(folder / cname / "policy.yaml")
        built = compress_and_recover(base, replace(policy, distill=None), (waves, targets), recovery)
        lps, w = scorer.score(built.model)
        kl0 = frame_kl(scorer.teacher, lps)
        trial = st.ask()
        trial.set_user_attr("candidate", cname)
        trial.set_user_attr("onnx_bytes", row["onnx_bytes"])
        trial.set_user_attr(f"ms@{prof}", row[f"ms@{prof}"])
        trial.report(kl0, 0)
        figures = {"onnx_bytes": row["onnx_bytes"], "ms": row[f"ms@{prof}"]}
        if quantization_only(policy) or kl0 <= min_kl:
            trial.set_user_attr("steps", 0)
            trial.set_user_attr("why_no_steps", "quantization only" if quantization_only(policy) else
                                f"dev KL {kl0:.3g} <= {min_kl}")
            fixed.append({"name": cname, "kl": kl0, "wer": w, **figures})
            built_fixed[cname] = (built, trial)  # told its measured KL at the end
            _save_model(built.model, built.states, folder / "finalists" / cname / "model", model_dir, policy,
                        {"trial": trial.number, "distill": {"steps": 0}, "fp32_bytes": base_row["bytes"]})
        else:
            runs.append(_Run(cname, trial, built.model, built.states, figures, kl0, w,
                             best=copy.deepcopy(built.model.state_dict())))
    alive = list(runs)
    rung_log = []
    for r, rung in enumerate(rungs):
        for j, run in enumerate(alive):
            say(f"rung {r + 1}/{len(rungs)} ({rung} steps)", j, len(alive))
            cfg, offset, total = rung_slice(rungs, r, run.steps, lr, warmup, schedule)
            res = distill(run.model, base, run.states, waves, targets, cfg, batch_seconds=batch_seconds,
                          seed=rung_seed(seed, r), offset=offset, total=total, opt_state=run.opt_state,
                          teacher_cache=cache, device=device)
            run.steps, run.opt_state = rung, res["opt_state"]
            lps, w = scorer.score(run.model)
            kl = frame_kl(scorer.teacher, lps)
            run.history.append({"steps": rung, "kl": kl, "wer": w, "loss_last": res["loss_last"]})
            run.trial.report(kl, rung)
            if kl < run.kl:  # keep the better: recovery must never cost accuracy
                run.kl, run.wer, run.best, run.best_steps = kl, w, copy.deepcopy(run.model.state_dict()), rung
        entries = [{"name": x.name, "kl": x.kl, "wer": x.wer, **x.figures} for x in alive]
        won = winners(entries + fixed, base_onnx, base_ms, prune_limit)
        going = survivors(won, entries) if rung != rungs[-1] else [x.name for x in alive]
        rung_log.append({"steps": rung, "alive": [x.name for x in alive], "won": won, "go_on": going,
                         "over_wer_limit": [e["name"] for e in entries + fixed
                                            if prune_limit is not None and e["wer"] > prune_limit]})
        for run in alive:
            if run.name not in going:
                run.trial.set_user_attr("steps", run.steps)
                st.tell(run.trial, state=TrialState.PRUNED)
        alive = [x for x in alive if x.name in going]
    out_rows = []
    finals = {x.name for x in alive}
    for run in runs:
        row = {"name": run.name, "steps": run.steps, "best_steps": run.best_steps, "history": run.history,
               "torch_kl": run.kl, "torch_wer": run.wer, "finalist": run.name in finals}
        if run.name in finals:
            run.model.load_state_dict(run.best)
            sub = folder / "finalists" / run.name
            sub.mkdir(parents=True)
            policy = Policy.load(folder / run.name / "policy.yaml")
            policy = replace(policy, distill=replace(kd, steps=run.best_steps))
            (sub / "policy.yaml").write_text(policy.to_yaml())
            _save_model(run.model, run.states, sub / "model", model_dir, policy,
                        {"trial": run.trial.number, "distill": {"steps": run.best_steps, "lr": lr, "seed": seed},
                         "fp32_bytes": base_row["bytes"]})
            row |= measure_onnx(run.model, run.states, sub, scorer, profs, int(base_row["bytes"]))
            row["onnx"] = str(sub / "model.onnx")
            run.trial.set_user_attr("steps", run.best_steps)
            run.trial.set_user_attr("wer", row["wer"])
            st.tell(run.trial, row["kl"])
        out_rows.append(row)
    for f in fixed:
        # Measured on the model built here, the one its folder keeps and `export` and a recipe
        # rebuild, not on propose's export (calibrated on fewer utterances).
        sub, (built, trial) = folder / "finalists" / f["name"], built_fixed[f["name"]]
        (sub / "policy.yaml").write_text((folder / f["name"] / "policy.yaml").read_text())
        row = dict(rows[f["name"]], name=f["name"], steps=0, best_steps=0, finalist=True, torch_kl=f["kl"])
        row |= measure_onnx(built.model, built.states, sub, scorer, profs, int(base_row["bytes"]))
        row["onnx"] = str(sub / "model.onnx")
        st.tell(trial, row["kl"])
        out_rows.append(row)
    result = {"version": 1, "candidates": str(folder), "model": str(model_dir), "corpus": str(corpus), "study": name,
              "storage": storage_url, "rungs": list(rungs), "kd_utterances": len(waves), "min_kl": min_kl, "lr": lr,
              "warmup": warmup, "schedule": schedule, "batch_seconds": batch_seconds, "seed": seed, "device": device,
              "profile": prof, "base": base_row,
              "teacher_batches_cached": len(cache), "teacher_cache_hits": cache.hits, "rung_log": rung_log,
              "wer_limit_to_go_on": prune_limit, "eta": ETA,
              "finalists": out_rows, "seconds": round(clock() - t0, 1)}
    (folder / "finalists.json").write_text(json.dumps(result, indent=1))  # the training is kept whatever follows
    return finish_finalists(result, folder, say, time, repeats, test_path, test_utterances, constraints)


def finish_finalists(result: dict, folder: Path, say: Callable[[str, int, int], None], time: bool = True,
                     repeats: int = 20, test_path: Path | None = None, test_utterances: int = 0,
                     constraints: tuple = ()) -> dict:
    """After the training (`result` as finalists.json holds it then): time the finalists with the
    base, mark the front and its knee, report on test, and write finalists.json again. Runs
    again as it is from a finalists.json whose training finished, so a stopped run loses no
    training (`finished` says whether it got this far)."""
    if time:
        say("timing", 0, 1)
        t1 = clock()
        time_finalists(result, folder, repeats)
        result["timing"]["wall_seconds"] = round(clock() - t1, 1)
    mark_front(result, ms_axis(result), constraints)
    test_path = Path(test_path or Path(result["corpus"]) / "test.jsonl")
    if test_path.is_file():
        say("test", 0, 1)
        cpu0 = cpu_seconds()
        report_on_test(result, folder, test_path, test_utterances)
        # the report's cost, not the search's: the bench leaves it out of an arm's CPU-hour
        result["test"]["cpu_seconds"] = round(cpu_seconds() - cpu0, 1)
    else:
        result["test"] = {"skipped": f"{test_path}: not found"}
    (folder / "finalists.json").write_text(json.dumps(result, indent=1))
    return result


def ms_axis(result: dict) -> str:
    """The front's latency axis: the measured ms at 8 s once the finalists are timed, else the predictor's."""
    return "measured_ms@8s" if "measured_ms@8s" in result["base"] else f"ms@{result['profile']}"


def finished(result: dict) -> bool:
    """Whether finalists.json went through `finish_finalists` (its front is marked)."""
    return "front_axes" in result and "test" in result


def _save_model(model: nn.Module, states: dict, out: Path, base_dir: Path, policy, extra: dict) -> None:
    """The finalist's model folder (weights, decoder files, compression record), as a trial
    keeps it, so `asrcompress export` bundles it like a trial's."""
    from ..compression import write_compression
    from ..models import read_config, save_model

    out.mkdir(parents=True, exist_ok=True)
    save_model(model, out, decoder=read_config(base_dir).get("decoder"))
    write_compression(out, base_dir, policy, states, extra)
