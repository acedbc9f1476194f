"""A running trial's heartbeat, written by a thread of the worker that runs it.

On an RDB storage with Optuna's heartbeat on, it is Optuna's own record (`record_heartbeat`,
timed by the database's clock); elsewhere (a journal) a `heartbeat` trial attribute holding the
worker's time. Optuna starts its heartbeat thread only inside `optimize()`, and our workers use
ask/tell, so the thread is ours. A trial whose heartbeat is older than the study's grace is
failed as stale and re-queued by any worker or driver (`recover_stale`), whatever host ran it.
"""

from __future__ import annotations

import threading
import time

import optuna
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled


class Heartbeat:
    def __init__(self, study: optuna.Study, interval_s: float) -> None:
        self.study, self.interval_s = study, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self, trial_id: int) -> None:
        storage = self.study._storage
        if isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage):
            storage.record_heartbeat(trial_id)
        else:
            storage.set_trial_user_attr(trial_id, "heartbeat", time.time())

    def _run(self, trial_id: int) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._beat(trial_id)
            except Exception:  # noqa: BLE001  the trial finished under us, or a passing storage error
                if self._stop.is_set():
                    return

    def start(self, trial: optuna.Trial) -> None:
        self.stop()
        self._beat(trial._trial_id)  # at once: a trial is never running without a heartbeat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(trial._trial_id,), daemon=True,
                                        name=f"heartbeat-{trial.number}")
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
