"""MLflow tracking: one parent run per study, one child run per trial, Pareto tags kept current.

The Tracker owns every MLflow call in asrcompress (runs, tags, artifacts, the model registry).
Everything goes through `MlflowClient` with explicit run ids, so any worker process can log
a trial's child run without an active parent run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

DEFAULT_URI = "sqlite:///mlruns/mlflow.db"
ARTIFACTS = "mlruns/artifacts"
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


# The MLflow UI's shared view: an experiment tag its runs page reads by key (see Tracker.front_view).
FRONT_VIEW_KEY = "asrcompress-pareto-front"
FRONT_VIEW_TAG = f"mlflow.sharedViewState.{FRONT_VIEW_KEY}"


def _objective_metrics(logged: set[str]) -> list[str]:
    """The logged metrics that are registered objectives (`latency_at_host` is `latency@host`),
    WER first."""
    from .objectives import lookup

    found = []
    for m in sorted(logged):
        try:
            lookup(m.replace("_at_", "@"))
        except KeyError:
            continue
        found.append(m)
    return sorted(found, key=lambda m: (m != "wer", m))


def tracking_uri(flag: str | None = None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the local SQLite store. A relative SQLite
    path is made absolute: Ray runs trials in other working directories."""
    uri = flag or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
    return uri


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    if not uri.startswith("sqlite:///"):  # sqlite:///rel/path or sqlite:////abs/path
        return MlflowClient(tracking_uri=uri)
    import fcntl

    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    # MLflow creates its schema on first use without a lock: two processes opening a new
    # SQLite store at once (workers, a Ray trainable and its driver) race, and the loser dies
    # on "table ... already exists". One process at a time creates or upgrades it.
    with open(db.with_name(db.name + ".init.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    return client


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = str(v)
    return out


def front_views(uri: str, study: str | None = None) -> dict[str, str]:
    """{study: URL path of its Pareto-front view} for every asrcompress study in the store (or
    the one named), each view saved as it stands now (`Tracker.front_view`)."""
    from .errors import UserError

    client = _client(uri)
    names = sorted(e.name.removeprefix("asrcompress/")
                   for e in client.search_experiments(filter_string="name LIKE 'asrcompress/%'", max_results=1000))
    if study is not None:
        if study not in names:
            raise UserError(f"--study {study!r}: no such study in {uri} (studies: {', '.join(names) or 'none'})")
        names = [study]
    views = {}
    for name in names:
        path = Tracker(uri, name).front_view()
        if path is not None:
            views[name] = path
    return views


class Tracker:
    def __init__(self, uri: str, study: str) -> None:
        self.uri, self.study = uri, study
        self.client = _client(uri)
        exp = self.client.get_experiment_by_name(f"asrcompress/{study}")
        if exp is None:
            location = None
            if uri.startswith("sqlite:///"):
                location = Path(ARTIFACTS).resolve().as_uri()
            exp_id = self.client.create_experiment(f"asrcompress/{study}", artifact_location=location)
        else:
            exp_id = exp.experiment_id
        if exp is None or EXPERIMENT_KIND[0] not in exp.tags:
            # Without it the MLflow 3 UI opens an experiment on its GenAI trace overview, not the runs.
            self.client.set_experiment_tag(exp_id, *EXPERIMENT_KIND)
        self.experiment_id = exp_id

    def parent_run(self, tags: dict[str, str]) -> str:
        """The study's parent run, created once and found again on resume."""
        runs = self.client.search_runs([self.experiment_id], "tags.asrcompress_role = 'study'", max_results=1)
        if runs:
            run_id = runs[0].info.run_id
            if runs[0].info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(self.experiment_id, run_name=f"study {self.study}",
                                     tags={"asrcompress_role": "study", "study": self.study, **tags})
        return run.info.run_id

    def start_trial(self, parent: str, number: int, policy: dict, profiles: list[str]) -> str:
        from mlflow.entities import Param

        # A trial run again after its node or process died (Ray retries it with the same Optuna
        # trial): keep one run per trial, the earlier attempt's, marked as retried.
        earlier = self.client.search_runs([self.experiment_id],
                                          f"tags.asrcompress_role = 'trial' and tags.trial = '{number}' "
                                          f"and tags.`mlflow.parentRunId` = '{parent}'", max_results=5)
        if earlier:
            run_id = earlier[0].info.run_id
            attempt = int(earlier[0].data.tags.get("attempt", "1")) + 1
            self.client.set_tag(run_id, "attempt", str(attempt))
            self.client.set_tag(run_id, "reason", f"attempt {attempt - 1} did not finish; run again")
            self.client.update_run(run_id, status="RUNNING")
            return run_id

        run = self.client.create_run(self.experiment_id, run_name=f"trial {number}", tags={
            "mlflow.parentRunId": parent, "asrcompress_role": "trial", "study": self.study,
            "trial": str(number), "profiles": ",".join(profiles), "pareto": "false"})
        params = [Param(k[:250], v[:6000]) for k, v in flatten({"policy": policy}).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(run.info.run_id, params=params[i:i + 100])
        self.client.log_text(run.info.run_id, yaml.safe_dump(policy, sort_keys=False), "policy.yaml")
        return run.info.run_id

    def finish_trial(self, run_id: str, metrics: dict[str, float] | None, status: str, reason: str = "") -> None:
        from mlflow.entities import Metric, RunTag

        if metrics:
            ms = [Metric(k.replace("@", "_at_"), float(v), 0, 0) for k, v in metrics.items()]
            self.client.log_batch(run_id, metrics=ms)
        tags = [RunTag("state", status)] + ([RunTag("reason", reason[:5000])] if reason else [])
        self.client.log_batch(run_id, tags=tags)
        self.client.set_terminated(run_id, "FINISHED" if status in ("COMPLETE", "PRUNED") else "FAILED")

    def trial_runs(self) -> dict[int, str]:
        runs = self.client.search_runs([self.experiment_id], "tags.asrcompress_role = 'trial'", max_results=50000)
        return {int(r.data.tags["trial"]): r.info.run_id for r in runs}

    def mark_pareto(self, front: set[int]) -> int:
        """Tag each trial run pareto=true/false; only runs whose tag changes are written (one
        search to read the tags, then a call per change, not per run). Returns the changes."""
        runs = self.client.search_runs([self.experiment_id], "tags.asrcompress_role = 'trial'", max_results=50000)
        changed = 0
        for r in runs:
            want = "true" if int(r.data.tags["trial"]) in front else "false"
            if r.data.tags.get("pareto") != want:
                self.client.set_tag(r.info.run_id, "pareto", want)
                changed += 1
        return changed

    def create_run(self, name: str, tags: dict[str, str], parent: str | None = None) -> str:
        """A plain run in this experiment (the benchmark's runs), optionally a child of `parent`."""
        tags = {**tags, **({"mlflow.parentRunId": parent} if parent else {})}
        return self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id

    def log_artifact(self, run_id: str, path: Path) -> None:
        self.client.log_artifact(run_id, str(path))

    def log_metric(self, run_id: str, key: str, value: float) -> None:
        self.client.log_metric(run_id, key.replace("@", "_at_"), float(value))

    def log_text(self, run_id: str, text: str, name: str) -> None:
        self.client.log_text(run_id, text, name)

    def finish_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)

    def register_model(self, name: str, source: Path, run_id: str | None, alias: str) -> dict:
        """A new version of registered model `name` from the folder `source`, given `alias`."""
        try:
            self.client.get_registered_model(name)
        except Exception:  # noqa: BLE001  MLflow raises its own error type for a missing model
            self.client.create_registered_model(name)
        mv = self.client.create_model_version(name, source=Path(source).resolve().as_uri(), run_id=run_id)
        self.client.set_registered_model_alias(name, alias, mv.version)
        return {"name": name, "version": mv.version, "alias": alias, "uri": f"models:/{name}@{alias}"}

    def front_view(self) -> str | None:
        """Save the study's Pareto front as an MLflow shared view and return its URL path (after
        the server's address), or None before the study has a parent run.

        The MLflow UI opens `#/experiments/ID/runs?viewStateShareKey=KEY` with the view stored in the
        experiment tag `mlflow.sharedViewState.KEY`: the filter `tags.pareto = 'true'`, sorted by
        WER, the study run expanded so its front trials show, and the objective columns (plus
        the size ratio) selected. A person who opens it sees the front without a click."""
        runs = self.client.search_runs([self.experiment_id], "tags.asrcompress_role = 'study'", max_results=1)
        if not runs:
            return None
        parent = runs[0].info.run_id
        trials = self.client.search_runs([self.experiment_id], "tags.asrcompress_role = 'trial'", max_results=200)
        logged = {k for r in trials for k in r.data.metrics}
        columns = _objective_metrics(logged) + (["size_ratio"] if "size_ratio" in logged else [])
        state = {"searchFilter": "tags.pareto = 'true'", "orderByKey": "metrics.`wer`" if "wer" in logged else "",
                 "orderByAsc": True, "startTime": "ALL", "lifecycleFilter": "Active",
                 "selectedColumns": [f"metrics.`{m}`" for m in columns] + ["tags.`state`"],
                 "runsExpanded": {parent: True}, "runsHiddenMode": "SHOW_ALL"}
        self.client.set_experiment_tag(self.experiment_id, FRONT_VIEW_TAG, json.dumps(state))
        # The runs page of the "Model training" view (MLflow 3 opens an experiment on its GenAI overview).
        return f"/#/experiments/{self.experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={FRONT_VIEW_KEY}"

    def close_stale(self, live: set[int]) -> int:
        """Runs left RUNNING by a dead worker: marked KILLED (their trials are retried)."""
        n = 0
        runs = self.client.search_runs([self.experiment_id], "tags.asrcompress_role = 'trial'", max_results=50000)
        for r in runs:
            if r.info.status == "RUNNING" and int(r.data.tags["trial"]) not in live:
                self.client.set_tag(r.info.run_id, "reason", "worker died; trial retried")
                self.client.set_terminated(r.info.run_id, "KILLED")
                n += 1
        return n
