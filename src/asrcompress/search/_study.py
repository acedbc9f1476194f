"""Studies on shared storage: open or resume, seed baselines, run workers, recover dead ones."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..errors import UserError
from ._space import Space

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def default_storage(study: str, root: Path = Path("mlruns")) -> str:
    return f"journal:{(root / 'optuna' / f'{study}.journal').resolve()}"


def open_storage(url: str, workers: int = 1):
    """journal:PATH (file journal, the default), postgresql://..., or sqlite:/// (one worker only)."""
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:"):
        if workers > 1:
            raise UserError(f"--storage {url}: SQLite cannot serve several workers; use journal:PATH or PostgreSQL")
        return optuna.storages.RDBStorage(url)
    if url.startswith(("postgresql://", "postgresql+psycopg2://", "mysql://")):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except ImportError:
            raise UserError(f"--storage {url.split('@')[-1]}: its database driver is not installed (PostgreSQL: "
                            "pip install 'psycopg[binary]'; MySQL: pip install pymysql)") from None
        except Exception as e:  # unreachable server, bad credentials
            raise UserError(f"--storage {url.split('@')[-1]}: cannot connect ({str(e).splitlines()[0][:150]})") from None
    raise UserError(f"--storage {url!r}: use journal:PATH, postgresql://... or sqlite:///PATH")


def make_sampler(name: str, seed: int | None):
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=True, n_startup_trials=6)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=6)
    raise UserError(f"--sampler {name!r} is not one of tpe, nsga2, gp, random")


def open_study(storage, name: str, space: Space, sampler) -> optuna.Study:
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    if name in existing:
        s = existing[name]
        names = s.user_attrs.get("objectives")
        if names is not None and list(names) != list(space.objectives):
            raise UserError(f"study {name!r} already exists with objectives {names}; this space has "
                            f"{list(space.objectives)} (pick another --study)")
    study = optuna.create_study(storage=storage, study_name=name, sampler=sampler, load_if_exists=True,
                                directions=["minimize"] * len(space.objectives))
    if "objectives" not in study.user_attrs:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(space.objectives))
        study.set_user_attr("objectives", list(space.objectives))
    return study


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(worker: str) -> bool | None:
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname():
        return None  # another machine: cannot tell
    try:
        os.kill(int(pid), 0)
        return True
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True


def recover_stale(study: optuna.Study) -> list[int]:
    """RUNNING trials whose worker process is gone: failed as stale and re-enqueued once."""
    stale = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _alive(t.user_attrs.get("worker", "")) is False:
            study._storage.set_trial_user_attr(t._trial_id, "stale", True)
            study.tell(t.number, state=TrialState.FAIL)
            if t.params:
                study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            stale.append(t.number)
    return stale


def counted(study: optuna.Study) -> int:
    """Trials that use the budget: finished ones (stale retries excluded) and running ones."""
    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in FINISHED and not t.user_attrs.get("stale"):
            n += 1
        elif t.state == TrialState.RUNNING:
            n += 1
    return n
