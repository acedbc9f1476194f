"""Where a running study stands, read from its storage: what the live display of `search` shows.

Read-only and cheap (one pass over the trials), so a display can poll it every few seconds
while the workers write; it opens its own storage, as any other process on the study would."""

from __future__ import annotations

import datetime as dt

import optuna
from optuna.trial import TrialState

from ._pareto import hypervolume, reference_point


def snapshot(study: optuna.Study, budget: int | None = None, front_rows: int = 8) -> dict:
    """Counts, trial-minutes, the current front (best WER first) and its hypervolume.

    trial_minutes: the wall time of every trial so far, finished and running. Each worker runs
    on 1 thread, so it is the search's CPU time to within the workers' idle waits.
    The hypervolume uses the study's fixed reference point (`reference_point`), the one the
    summary logs, so the figure climbs to the final one."""
    trials = study.get_trials(deepcopy=False)
    attrs = study.user_attrs
    objectives: list[str] = attrs.get("objectives", [])
    base = attrs.get("base")
    now = dt.datetime.now()
    states = {s: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED,
                                                              TrialState.FAIL, TrialState.RUNNING)}
    seconds = sum(((t.datetime_complete or now) - t.datetime_start).total_seconds()
                  for t in trials if t.datetime_start is not None)
    doc = {"stage": "preparing" if base is None else "trials",
           "budget": budget if budget is not None else _budget(study),
           "complete": states[TrialState.COMPLETE], "pruned": states[TrialState.PRUNED],
           "failed": states[TrialState.FAIL], "running": states[TrialState.RUNNING],
           "trial_minutes": seconds / 60, "objectives": objectives, "front": [], "hypervolume": 0.0}
    if base is None or not objectives:
        return doc
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    doc["hypervolume"] = hypervolume([list(t.values) for t in done], reference_point(base, objectives))
    front = sorted(study.best_trials, key=lambda t: t.values[0]) if done else []
    doc["front_size"] = len(front)
    doc["front"] = [{"trial": t.number, "values": dict(zip(objectives, t.values)),
                     "size_ratio": t.user_attrs.get("size_ratio"), "baseline": t.user_attrs.get("baseline")}
                    for t in front[:front_rows]]
    doc["base"] = {o: base[o] for o in objectives if o in base}
    return doc


def _budget(study: optuna.Study) -> int | None:
    from ._settings import SETTINGS_ATTR

    return (study.user_attrs.get(SETTINGS_ATTR) or {}).get("budget")
