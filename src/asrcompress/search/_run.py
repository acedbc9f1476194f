"""The search driver and its workers (processes sharing one study on journal/RDB storage)."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
import traceback
import warnings
from pathlib import Path
from typing import Callable

import optuna
import torch
from optuna.trial import TrialState

from ..compression import PolicyError
from ..errors import UserError
from ..tracking import Tracker
from ._heartbeat import Heartbeat
from ._preflight import preflight
from ._sample import baseline_params, policy_from_params, suggest
from ._settings import SETTINGS_ATTR, STAGED_RECORD, SearchConfig, is_staged, corpus_fingerprint, model_sha256, settings_for, study_settings
from ._space import check_against_model
from ._study import (
    budget_lock, check_objectives, counted, make_sampler, open_storage, open_study, others_running, recover_stale,
    worker_id,
)
from ._trial import Context, TrialStopped, objectives_of, run_trial


def check_inputs(settings: SearchConfig) -> None:
    """The model and corpus at the paths the study names must be the ones it was started with."""
    for what, path, want, fingerprint in (("model", settings.model, settings.model_sha256, model_sha256),
                                          ("corpus", settings.corpus, settings.corpus_fingerprint, corpus_fingerprint)):
        if not Path(path).exists():
            raise UserError(f"{path}: the study's {what} is not at this path on this machine (mount it there)")
        if fingerprint(Path(path)) != want:
            raise UserError(f"{path}: the {what} here differs from the one the study was started with "
                            f"(sha256 {want[:12]}); a study's {what} may not change")


def _context(settings: SearchConfig):
    """The space and trial context of the study's settings (its model and corpus checked)."""
    check_inputs(settings)
    space = settings.space()
    ctx = Context.load(Path(settings.model), Path(settings.corpus), space,
                       {name: settings.profile(name) for name in space.profiles}, Path(settings.workdir),
                       settings.dev_utterances, settings.kd_utterances, settings.decoder)
    ctx.trial_timeout_s = settings.trial_timeout_s
    check_against_model(space, ctx.layer_names)
    return space, ctx


def _open(cfg: dict) -> tuple[optuna.Study, SearchConfig]:
    """The existing study and its settings; its storage reopened with the study's heartbeat."""
    from ._summary import load_study

    study = load_study(cfg["storage"], cfg["study"])
    refuse_staged(study)
    settings = study_settings(study)
    storage = open_storage(cfg["storage"], cfg.get("workers", 2), settings.heartbeat_grace_s)
    return optuna.load_study(study_name=cfg["study"], storage=storage), settings


def _front_wers(study: optuna.Study, objectives: list[str]) -> float | None:
    front = study.best_trials
    return max(t.values[objectives.index("wer")] for t in front) if front else None


def _next_trial(study: optuna.Study, settings: SearchConfig, tracker: Tracker, cpu_left, lock,
                ) -> optuna.Trial | None:
    """A new trial while budget is left, else None. While the budget is used but trials of other
    workers still run, wait: one whose worker died (here or on another host) goes stale, is
    re-queued, and is picked up here, so a study never stalls short of its budget. `lock()`
    makes the count and the ask one step across workers (`budget_lock`)."""
    while cpu_left():
        _recover_dead_workers(study, tracker, settings.heartbeat_grace_s)
        with lock():
            if counted(study) < settings.budget:
                with warnings.catch_warnings():  # Optuna warns that its heartbeat expects optimize(); ours is our own
                    warnings.simplefilter("ignore", UserWarning)
                    return study.ask()
        # The budget is used: only a trial that goes stale (its worker died) frees a place. Wait
        # for the others without counting again meanwhile: a count read while another trial
        # changes state can come out one short, and ask for one trial too many.
        while True:
            if not others_running(study) or not cpu_left():
                return None
            time.sleep(min(2.0, settings.heartbeat_interval_s))
            if _recover_dead_workers(study, tracker, settings.heartbeat_grace_s):
                break
    return None


def work(cfg: dict, loaded: tuple | None = None) -> dict:
    """Run trials until the study's budget is used; returns counts for this worker. Everything
    that scores a trial comes from the study's settings; `cfg` holds only the storage, study
    name, seed, thread count and (optionally) the MLflow URI and a CPU budget.
    `loaded`: (space, context) when this process has them already."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(cfg["threads"])
    study, settings = _open(cfg)
    space, ctx = loaded or _context(settings)
    ctx.device = cfg.get("device", "cpu")  # this worker's own: not a study setting (workers may differ)
    # Each worker its own seed: equal seeds make every worker draw the same random/startup trials.
    seed = None if cfg.get("seed") is None else cfg["seed"] + 1000 * cfg.get("worker_index", 0)
    study = open_study(study._storage, cfg["study"], space, make_sampler(settings.sampler, seed))
    tracker = Tracker(cfg.get("tracking_uri") or settings.tracking_uri, cfg["study"])
    parent = study.user_attrs["mlflow_parent"]
    objectives = list(space.objectives)
    base = study.user_attrs["base"]
    done = {"complete": 0, "pruned": 0, "failed": 0, "saved_steps": 0}
    cpu0 = time.process_time()
    # A CPU-time budget per worker (the benchmark's): no new trial starts once it is spent. CPU, not
    # wall time, so arms compared at equal budget stay equal when the machine is shared.
    cpu_budget = cfg.get("cpu_budget_s")
    heartbeat = Heartbeat(study, settings.heartbeat_interval_s)
    def lock():
        return budget_lock(cfg["storage"], cfg["study"])

    while (trial := _next_trial(study, settings, tracker,
                                lambda: cpu_budget is None or time.process_time() - cpu0 < cpu_budget, lock)) is not None:
        trial.set_user_attr("worker", worker_id())
        heartbeat.start(trial)
        params = suggest(trial, space, ctx.layer_names)
        policy = policy_from_params(space, ctx.layer_names, params)
        trial.set_user_attr("policy", policy)
        run_id = tracker.start_trial(parent, trial.number, policy, space.profiles)
        trial.set_user_attr("mlflow_run_id", run_id)
        try:
            result = run_trial(ctx, policy, trial.number, _front_wers(study, objectives))
        except TrialStopped as e:
            trial.set_user_attr("reason", e.reason)
            trial.set_user_attr("saved_steps", e.saved_steps)
            state = TrialState.PRUNED if e.pruned else TrialState.FAIL
            study.tell(trial, state=state)
            tracker.finish_trial(run_id, {"saved_steps": e.saved_steps}, state.name, e.reason)
            done["pruned" if e.pruned else "failed"] += 1
            done["saved_steps"] += e.saved_steps
            continue
        except (PolicyError, UserError) as e:
            reason = f"invalid policy: {e}"
        except Exception as e:  # a trial's crash must not end the study: record it and go on
            reason = f"{type(e).__name__}: {e}".strip()
            trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
        else:
            reason = ""
        finally:
            heartbeat.stop()
        if reason:
            trial.set_user_attr("reason", reason)
            study.tell(trial, state=TrialState.FAIL)
            tracker.finish_trial(run_id, None, "FAIL", reason)
            done["failed"] += 1
            continue
        for c in space.constraints:
            trial.set_constraint(c.objective, result.objectives[c.objective] - c.limit(base))
        for k, v in result.attrs().items():
            trial.set_user_attr(k, v)
        study.tell(trial, result.values(objectives))
        tracker.finish_trial(run_id, result.metrics(), "COMPLETE")
        tracker.mark_pareto({t.number for t in study.best_trials})
        done["complete"] += 1
    done["cpu_seconds"] = time.process_time() - cpu0
    return done


def _work_entry(cfg: dict, queue) -> None:
    try:
        queue.put({"worker_index": cfg["worker_index"], **work(cfg)})
    except UserError as e:
        queue.put({"worker_index": cfg["worker_index"], "error": str(e)})


MAX_RESTARTS_PER_WORKER = 3


def _recover_dead_workers(study: optuna.Study, tracker: Tracker, grace_s: float, always: bool = False) -> list[int]:
    """Fail and re-queue the trials of dead workers, and close their MLflow runs as KILLED
    (`always`: also runs left RUNNING by a worker killed between its last two records)."""
    stale = recover_stale(study, grace_s)
    if stale or always:
        tracker.close_stale({t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))})
    return stale


def _supervise(cfg: dict) -> list[dict]:
    """Run the worker processes; a worker killed mid-trial (kill -9, out of memory) is
    replaced while budget is left, and its trial is failed as stale and retried."""
    import queue as queue_mod

    spawn = mp.get_context("spawn")
    results_q = spawn.Queue()

    def start(i: int, generation: int):
        # A replacement gets its own seed: the dead worker's seeded draws are already in the study.
        seed = None if cfg["seed"] is None else cfg["seed"] + 100 * generation
        p = spawn.Process(target=_work_entry, args=({**cfg, "threads": 1, "worker_index": i, "seed": seed},
                                                    results_q))
        p.start()
        return p

    procs = {i: start(i, 0) for i in range(cfg["workers"])}
    generation = {i: 0 for i in procs}
    results: list[dict] = []
    while procs:
        try:
            r = results_q.get(timeout=1.0)
            results.append(r)
            procs.pop(r["worker_index"]).join()
            continue
        except queue_mod.Empty:
            pass
        for i, p in list(procs.items()):
            if p.is_alive() or p.exitcode == 0:  # exit 0: its result is on the way
                continue
            p.join()
            study, settings = _open(cfg)
            stale = _recover_dead_workers(study, Tracker(cfg["tracking_uri"], cfg["study"]), settings.heartbeat_grace_s,
                                          always=True)
            print(f"worker {i} died (exit code {p.exitcode}); trial(s) {stale} failed as stale and re-queued",
                  flush=True)
            if generation[i] < MAX_RESTARTS_PER_WORKER and counted(study) < settings.budget:
                generation[i] += 1
                procs[i] = start(i, generation[i])
            else:
                del procs[i]
                results.append({"worker_index": i, "died": p.exitcode})
    return results


def _existing(cfg: dict) -> optuna.Study | None:
    """The study if it exists (a journal that does not exist yet is not created here)."""
    url, name = cfg["storage"], cfg["study"]
    if url.startswith("journal:") and not Path(url.removeprefix("journal:")).is_file():
        return None
    storage = open_storage(url, cfg["workers"])
    if name not in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        if (Path(cfg["workdir"]) / STAGED_RECORD).is_file():
            raise UserError(f"study {name!r} is a staged search (started, not finished); resume it without "
                            "--strategy one-stage, or pick another --study")
        return None
    study = optuna.load_study(study_name=name, storage=storage)
    refuse_staged(study)
    return study


def refuse_staged(study: optuna.Study) -> None:
    """A staged search's study holds finalists, not trials: the one-stage driver must not add to it."""
    if is_staged(study):
        raise UserError(f"study {study.study_name!r} is a staged search; resume it without --strategy one-stage "
                        "(workers do not join it), or pick another --study")


# The stages `prepare`, `run_search` and `run_ray` tell a live display.
PREPARING = "preparing: the base model's objectives and the baseline trials"
SUMMARY = "summary: the front re-scored on test, MLflow artifacts"


def prepare(cfg: dict, stage: Callable[[str], None] | None = None) -> tuple[optuna.Study, object, Context]:
    """Open (or resume) the study: settings, base objectives, baselines and the MLflow parent
    run, once. Resuming with another model, corpus, space or profiles is refused, and the study
    is left as it was. Returns the study and the loaded (space, context), for a worker here.
    `stage` is told "preparing" once everything given has been checked and the study is open."""
    from .._outputs import refuse_overlap

    from ._space import load_space

    requested_space = load_space(Path(cfg["space"])) if cfg.get("space") else None  # a bad space: one line, no study
    preflight(cfg)
    existing = _existing(cfg)
    if existing is not None and requested_space is not None:
        check_objectives(cfg["study"], existing.user_attrs, requested_space)
    stored = study_settings(existing) if existing is not None else None
    settings = settings_for(cfg, stored)  # refused here, before anything is written
    cfg |= {"tracking_uri": settings.tracking_uri or cfg["tracking_uri"]}
    refuse_overlap(Path(settings.workdir), {"model": Path(settings.model), "corpus": Path(settings.corpus)},
                   "the study's trial folder")
    space, ctx = _context(settings)
    storage = open_storage(cfg["storage"], cfg["workers"], settings.heartbeat_grace_s)
    study = open_study(storage, cfg["study"], space, make_sampler(settings.sampler, cfg["seed"]))
    tracker = Tracker(cfg["tracking_uri"], cfg["study"])
    study.set_user_attr(SETTINGS_ATTR, settings.to_dict())
    if stage is not None:
        stage(PREPARING)
    if "base" not in study.user_attrs:
        base = objectives_of(ctx, ctx.base, {}, Path(settings.workdir) / "base")
        study.set_user_attr("base", {k: v for k, v in base.items() if k in space.objectives})
        for name, params in (baseline_params(space, ctx.layer_names) if cfg.get("baselines", True) else {}).items():
            study.enqueue_trial(params, user_attrs={"baseline": name}, skip_if_exists=True)
        study.set_user_attr("workdir", settings.workdir)  # read by front, export and the summary
    if "mlflow_parent" not in study.user_attrs:
        study.set_user_attr("mlflow_parent", tracker.parent_run({
            "space": settings.space_name, "sampler": settings.sampler, "profiles": ",".join(space.profiles)}))
    stale = _recover_dead_workers(study, tracker, settings.heartbeat_grace_s, always=True)
    if stale:
        print(f"retrying {len(stale)} trial(s) left running by dead workers: {stale}")
    return study, space, ctx


def run_search(cfg: dict, stage: Callable[[str], None] | None = None) -> dict:
    """Prepare, run `workers` worker processes to the budget, then write the study's summary.
    `stage(name)` is told as each stage starts (a live display's header)."""
    stage = stage or (lambda name: None)
    t0 = time.perf_counter()
    _, space, ctx = prepare(cfg, stage)
    stage("trials")
    if cfg["workers"] == 1:
        results = [work(cfg, (space, ctx))]
    else:
        results = _supervise(cfg)
        errors = [r["error"] for r in results if "error" in r]
        if errors:
            raise UserError(errors[0])
    from ._summary import summarize_study

    stage(SUMMARY)
    summary = summarize_study(cfg)
    summary["wall_seconds"] = round(time.perf_counter() - t0, 1)
    summary["workers"] = results
    return summary


def dumps(d: dict) -> str:
    return json.dumps(d, indent=2, default=str)
