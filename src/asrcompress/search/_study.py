"""Studies on shared storage: open or resume, seed baselines, run workers, recover dead ones."""

from __future__ import annotations

import contextlib
import os
import socket
import time
import warnings
import zlib
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..errors import UserError
from ._space import Space

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def default_storage(study: str, root: Path = Path("mlruns")) -> str:
    return f"journal:{(root / 'optuna' / f'{study}.journal').resolve()}"


HOSTNAME_ENV = "ASRCOMPRESS_HOSTNAME"  # the host name a worker reports (tests fake a remote host with it)


def open_storage(url: str, workers: int = 1, grace_s: float | None = None):
    """journal:PATH (file journal, the default), postgresql://..., or sqlite:/// (one worker only).

    `grace_s`: the study's heartbeat grace. On PostgreSQL/MySQL it turns on Optuna's own heartbeat
    (a heartbeat table with the database's clock); a journal has none, so workers write theirs
    as a trial attribute (see _heartbeat)."""
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
        beat = {} if grace_s is None else {
            "heartbeat_interval": max(1, round(heartbeat_interval(grace_s))), "grace_period": max(2, round(grace_s)),
            "heartbeat_stale_trial_callback": _requeue_stale}
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True}, **beat)
        except ImportError:
            raise UserError(f"--storage {url.split('@')[-1]}: its database driver is not installed (PostgreSQL: "
                            "pip install 'asrcompress[postgres]'; MySQL: pip install pymysql)") from None
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


def check_objectives(name: str, attrs: dict, space: Space) -> None:
    names = attrs.get("objectives")
    if names is not None and list(names) != list(space.objectives):
        raise UserError(f"study {name!r} already exists with objectives {names}; this space has "
                        f"{list(space.objectives)} (pick another --study)")


def open_study(storage, name: str, space: Space, sampler) -> optuna.Study:
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    if name in existing:
        check_objectives(name, existing[name].user_attrs, space)
    study = optuna.create_study(storage=storage, study_name=name, sampler=sampler, load_if_exists=True,
                                directions=["minimize"] * len(space.objectives))
    if "objectives" not in study.user_attrs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(space.objectives))
        study.set_user_attr("objectives", list(space.objectives))
    return study


def heartbeat_interval(grace_s: float) -> float:
    return max(0.5, grace_s / 6)


def worker_id() -> str:
    return f"{os.environ.get(HOSTNAME_ENV) or socket.gethostname()}:{os.getpid()}"


def _this_host() -> str:
    return os.environ.get(HOSTNAME_ENV) or socket.gethostname()


def _alive(worker: str) -> bool | None:
    """A worker on this host: is its process alive? On another host: cannot tell (None)."""
    host, _, pid = worker.rpartition(":")
    if host != _this_host():
        return None
    try:
        os.kill(int(pid), 0)
        return True
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True


def _heartbeat_age(t: optuna.trial.FrozenTrial) -> float | None:
    beat = t.user_attrs.get("heartbeat")
    return None if beat is None else time.time() - float(beat)


def _requeue(study: optuna.Study, number: int, params: dict) -> None:
    if params:
        study.enqueue_trial(params, user_attrs={"retry_of": number})


def _requeue_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Optuna's failed-trial callback (RDB heartbeat): the stale trial is re-queued once."""
    if "retry_of" not in trial.user_attrs:
        _requeue(study, trial.number, trial.params)


def recover_stale(study: optuna.Study, grace_s: float) -> list[int]:
    """RUNNING trials whose worker is gone, failed as stale and re-queued once: a worker on
    this host whose process is dead, or any worker, on any host, whose heartbeat is older than
    `grace_s` (Optuna's heartbeat table on an RDB, the `heartbeat` attribute on a journal)."""
    from optuna.storages import fail_stale_trials

    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if before:
        with warnings.catch_warnings():  # experimental since Optuna 2.9, and still so in 5.0
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)  # a no-op unless the RDB storage has Optuna's heartbeat on
    stale = [t.number for t in study.get_trials(deepcopy=False) if t.number in before and _failed_by_heartbeat(t)]
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        alive = _alive(t.user_attrs.get("worker", ""))
        age = _heartbeat_age(t)
        if alive is False or (alive is None and age is not None and age > grace_s):
            try:
                study._storage.set_trial_user_attr(t._trial_id, "stale", True)
                study.tell(t.number, state=TrialState.FAIL)
            except (RuntimeError, ValueError, optuna.exceptions.UpdateFinishedTrialError):
                continue  # another process recovered it first
            if "retry_of" not in t.user_attrs:
                _requeue(study, t.number, t.params)
            stale.append(t.number)
    return sorted(stale)


def _failed_by_heartbeat(t: optuna.trial.FrozenTrial) -> bool:
    return t.state == TrialState.FAIL and "reason" not in t.user_attrs  # a worker's own FAIL says why


def others_running(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def counted(study: optuna.Study) -> int:
    """Trials that use the budget: finished ones (stale ones excluded: their retry counts) and
    running ones."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    n = 0
    for t in trials:
        if t.state in FINISHED and not t.user_attrs.get("stale") and t.number not in retried:
            n += 1
        elif t.state == TrialState.RUNNING:
            n += 1
    return n


@contextlib.contextmanager
def budget_lock(url: str, study_name: str):
    """Count-then-ask as one step across every worker of a study, so that two workers that both
    see one place left cannot both take it. journal: an exclusive flock on a file beside the
    journal (every host that shares the journal's disk); PostgreSQL / MySQL: a session-level
    advisory lock named after the study; SQLite serves one worker, which needs no lock."""
    if url.startswith("journal:"):
        import fcntl

        path = Path(url.removeprefix("journal:") + ".budget.lock")
        with open(path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return
    if url.startswith(("postgresql://", "postgresql+psycopg2://", "mysql://")):
        import sqlalchemy as sa

        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        key = zlib.crc32(f"asrcompress-budget:{study_name}".encode()) & 0x7FFFFFFF
        mysql = url.startswith("mysql")
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT GET_LOCK(:k, 600)" if mysql else "SELECT pg_advisory_lock(:k)"),
                         {"k": str(key) if mysql else key})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT RELEASE_LOCK(:k)" if mysql else "SELECT pg_advisory_unlock(:k)"),
                             {"k": str(key) if mysql else key})
        engine.dispose()
        return
    yield
