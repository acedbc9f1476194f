"""Ray Tune backend: OptunaSearch (multi-objective) under a ConcurrencyLimiter on a cluster.

The Optuna study lives on the same storage as the local backend, so `front`, `export` and the
MLflow tracking work the same. Each Ray trial learns its Optuna trial id from the
define-by-run space and sets constraints and attributes on it itself (OptunaSearch only tells
values). Ray changes each trial's working directory, so every path here is absolute.
"""

from __future__ import annotations

import math
import traceback
from pathlib import Path
from typing import Callable

_CTX: dict = {}


def require_ray() -> None:
    """Ray is an extra: say which one to install, in one line."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        from ..errors import UserError

        raise UserError("--backend ray needs Ray Tune, which is not installed: pip install 'asrcompress[ray]'")


def _metric(name: str) -> str:
    return name.replace("@", "_at_")


def _trainable(config: dict) -> None:
    import optuna
    from ray import tune

    from ..objectives import worst_values
    from ..tracking import Tracker
    from ._run import _context, _front_wers, _open
    from ._sample import policy_from_params
    from ._trial import TrialStopped, run_trial

    cfg = config["asrcompress"]
    study, settings = _open(cfg)  # everything that scores the trial comes from the study
    key = (cfg["storage"], cfg["study"])
    if _CTX.get("key") != key:  # one context per Ray worker process
        _CTX["key"], (_CTX["space"], _CTX["ctx"]) = key, _context(settings)
    space, ctx = _CTX["space"], _CTX["ctx"]
    ctx.device = cfg.get("device", "cpu")
    trial = optuna.trial.Trial(study, config["optuna_trial_id"])
    number = config["optuna_trial_number"]
    params = {k: v for k, v in config.items() if k not in ("asrcompress", "optuna_trial_id", "optuna_trial_number")}
    policy = policy_from_params(space, ctx.layer_names, params)
    tracker = Tracker(cfg.get("tracking_uri") or settings.tracking_uri, cfg["study"])
    run_id = tracker.start_trial(study.user_attrs["mlflow_parent"], number, policy, space.profiles)
    trial.set_user_attr("policy", policy)
    trial.set_user_attr("mlflow_run_id", run_id)
    trial.set_user_attr("worker", f"ray:{Path.cwd().name}")
    base = study.user_attrs["base"]
    worst = worst_values(base, list(space.objectives))  # what a stopped trial reports, per the registry
    try:  # no heartbeat here: Tune itself re-runs a trial whose node died (FailureConfig)
        result = run_trial(ctx, policy, number, _front_wers(study, list(space.objectives)))
    except TrialStopped as e:
        _report_stopped(trial, tracker, run_id, space, worst, e)
        return
    except Exception as e:  # noqa: BLE001  a trial's crash is recorded, not retried as a node failure
        trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
        _report_stopped(trial, tracker, run_id, space, worst,
                        TrialStopped(f"{type(e).__name__}: {e}".strip(), pruned=False))
        return
    values = result.objectives
    for c in space.constraints:
        trial.set_constraint(c.objective, values[c.objective] - c.limit(base))
    for k, v in result.attrs().items():
        trial.set_user_attr(k, v)
    tracker.finish_trial(run_id, result.metrics(), "COMPLETE")
    tune.report({_metric(o): values[o] if math.isfinite(values[o]) else worst[o] for o in space.objectives}
                | {"stopped": 0})


def _report_stopped(trial, tracker, run_id: str, space, worst: dict, e) -> None:
    """OptunaSearch cannot record a pruned or failed multi-objective trial: report finite
    worst-case values so the Optuna trial completes, and say why."""
    from ray import tune

    trial.set_user_attr("reason", e.reason)
    trial.set_user_attr("saved_steps", e.saved_steps)
    for c in space.constraints:
        trial.set_constraint(c.objective, 1.0)
    tracker.finish_trial(run_id, {"saved_steps": e.saved_steps}, "PRUNED" if e.pruned else "FAIL", e.reason)
    tune.report({_metric(o): v for o, v in worst.items()} | {"stopped": 1})


class _Define:
    """Define-by-run space for OptunaSearch; a module-level class so Ray can checkpoint it."""

    def __init__(self, space, layer_names: list[str]) -> None:
        self.space, self.layer_names = space, layer_names

    def __call__(self, trial) -> dict:
        from ._sample import suggest

        suggest(trial, self.space, self.layer_names)
        return {"optuna_trial_id": trial._trial_id, "optuna_trial_number": trial.number}


def run_ray(cfg: dict, address: str | None, stage: Callable[[str], None] | None = None) -> dict:
    """The study's trials as Ray Tune trials; `stage(name)` is told as each stage starts."""
    require_ray()
    import optuna
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from ._run import SUMMARY, prepare
    from ._settings import study_settings
    from ._study import make_sampler, open_storage
    from ._summary import summarize_study

    _, space, ctx = prepare(cfg, stage)
    define = _Define(space, ctx.layer_names)

    storage = open_storage(cfg["storage"], workers=2)
    study = optuna.load_study(study_name=cfg["study"], storage=storage)
    done = len([t for t in study.get_trials(deepcopy=False) if t.state.is_finished()])
    remaining = max(0, study_settings(study).budget - done)
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}})
    metrics = [_metric(o) for o in space.objectives]
    searcher = OptunaSearch(define, metric=metrics, mode=["min"] * len(metrics),
                            sampler=make_sampler(study_settings(study).sampler, cfg["seed"]), study_name=cfg["study"],
                            storage=storage)
    path = Path(cfg["workdir"]).resolve() / "ray"
    # --device cuda: each trial asks Ray for a GPU (its node must have one); scoring stays on the CPU
    trainable = tune.with_resources(_trainable, {"cpu": 1, **({"gpu": 1} if cfg.get("device") == "cuda" else {})})
    run_config = tune.RunConfig(name="tune", storage_path=str(path), verbose=0,
                                failure_config=tune.FailureConfig(max_failures=1))
    if tune.Tuner.can_restore(str(path / "tune")):
        tuner = tune.Tuner.restore(str(path / "tune"), trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(trainable, param_space={"asrcompress": cfg},
                           tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, cfg["workers"]),
                                                       num_samples=remaining),
                           run_config=run_config)
    if stage is not None:
        stage("trials on Ray")
    if remaining:
        import contextlib
        import sys

        with contextlib.redirect_stdout(sys.stderr):  # Tune's tables must not mix with --json output
            tuner.fit()
    if stage is not None:
        stage(SUMMARY)
    return summarize_study(cfg)
