"""End-to-end searches on a tiny model: 2 workers on journal storage, MLflow Pareto tags,
constraints in `front`, resume after kill -9, and a verified export bundle."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from ..compression.models import conformer
from ..conftest import REPO, needs_synth

SPACE = """version: 1
groups:
  - pattern: "encoder.*"
    bits: [null, 8, 4]
    sparsity: [0.0, 0.5]
methods: [prune, quant]
distill: {steps: 2, temperature: [1.0, 3.0], alpha: [0.2, 0.8], lr: 1.0e-3}
objectives: [wer, latency@host, memory]
constraints: ["memory <= 40"]
"""


def cli(cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asrcompress.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def search_args(env: dict, trials: int, workers: int = 1) -> list[str]:
    return ["search", "--space", str(env["space"]), "--model", str(env["model"]), "--corpus", str(env["corpus"]),
            "--trials", str(trials), "--workers", str(workers), "--dev-utterances", "4", "--kd-utterances", "8",
            "--profiles", str(REPO / "hardware_profiles"), "--study", env["study"], "--json",
            "--strategy", "one-stage"]


@pytest.fixture()
def env(tmp_path, tiny_corpus):
    from asrcompress.models import save_model

    save_model(conformer(), tmp_path / "tiny")
    (tmp_path / "space.yaml").write_text(SPACE)
    return {"cwd": tmp_path, "model": tmp_path / "tiny", "space": tmp_path / "space.yaml", "corpus": tiny_corpus,
            "study": "t"}


def study_of(env) -> optuna.Study:
    from asrcompress.search import default_storage, open_storage

    url = default_storage(env["study"], env["cwd"] / "mlruns")
    return optuna.load_study(study_name=env["study"], storage=open_storage(url))


def mlflow_runs(env) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{env['cwd'] / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(f"asrcompress/{env['study']}")
    return client.search_runs([exp.experiment_id], max_results=1000)


@pytest.mark.slow  # ~55 s: kept out of the 15-minute fast suite; make test-reliability runs it
@needs_synth
def test_two_workers_mlflow_front_and_export(env):
    p = cli(env["cwd"], *search_args(env, trials=5, workers=2))
    assert p.returncode == 0, p.stderr[-3000:]
    study = study_of(env)
    trials = study.get_trials()
    # The live display, as a log: a line per finished trial and per stage, never silent.
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("search t [")]
    assert any(ln.startswith("search t [preparing") for ln in lines), p.stderr[-3000:]
    assert any(ln.startswith("search t [summary") and "0 running" in ln for ln in lines), lines
    done = [int(ln.split("trials ")[1].split("/")[0]) for ln in lines if ln.startswith("search t [trials]")]
    assert done == sorted(done) and len(done) >= 2, lines
    # Its figures are the summary's: the same front, the same hypervolume.
    from asrcompress.search import snapshot

    snap, summary = snapshot(study), json.loads(p.stdout)
    assert snap["budget"] == 5 and snap["running"] == 0
    assert snap["complete"] + snap["pruned"] + snap["failed"] == len(trials)
    assert snap["hypervolume"] == pytest.approx(summary["hypervolume"], rel=1e-9)
    assert [r["trial"] for r in snap["front"]] == [r["trial"] for r in summary["front"]][:8]
    assert snap["trial_minutes"] > 0
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]
    assert 5 <= len(finished) <= 6 and not [t for t in trials if t.state == TrialState.RUNNING]
    assert len({t.number for t in trials}) == len(trials)
    assert len({t.user_attrs["mlflow_run_id"] for t in trials}) == len(trials)  # one run per trial
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2  # both processes ran trials
    assert {t.user_attrs.get("baseline") for t in trials} >= {"uniform_int8", "uniform_int4", "sparse50"}
    # each worker seeds its sampler differently: equal seeds drew the same "random" trial twice
    sampled = [tuple(sorted(t.params.items())) for t in trials if not t.user_attrs.get("baseline")]
    assert len(set(sampled)) == len(sampled)

    runs = mlflow_runs(env)
    children = [r for r in runs if r.data.tags.get("asrcompress_role") == "trial"]
    parent = [r for r in runs if r.data.tags.get("asrcompress_role") == "study"]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    assert len(children) == len(trials) and all(r.info.status != "RUNNING" for r in children)
    assert all(r.data.tags["mlflow.parentRunId"] == parent[0].info.run_id for r in children)
    tagged = {int(r.data.tags["trial"]) for r in children if r.data.tags["pareto"] == "true"}
    assert tagged == {t.number for t in study.best_trials} and tagged
    for r in children:
        if r.data.tags.get("state") == "COMPLETE":
            assert {"wer", "latency_at_host", "memory", "trial_seconds", "finetune_steps"} <= set(r.data.metrics)

    front = json.loads(cli(env["cwd"], "front", "--study", env["study"], "--json").stdout)
    assert front and all(row["values"]["memory"] <= 40 for row in front)

    out = env["cwd"] / "bundle"
    p = cli(env["cwd"], "export", "--study", env["study"], "--pick", "knee", "--out", str(out))
    assert p.returncode == 0, p.stderr[-3000:]
    card = json.loads((out / "model_card.json").read_text())
    assert abs(card["wer_difference_points"]) <= 0.3 + 1e-9  # the ONNX file scores as the trial did
    assert card["registered"]["alias"] == "candidate"
    from asrcompress.errors import UserError
    from asrcompress.export._bundle import verify_bundle

    verify_bundle(out)
    with open(out / "policy.yaml", "a") as f:
        f.write("# tampered\n")
    with pytest.raises(UserError, match="policy.yaml: sha256 does not match"):
        verify_bundle(out)


@pytest.mark.slow  # ~35 s: kept out of the 15-minute fast suite; make test-reliability runs it
@needs_synth
def test_resume_after_kill_9_keeps_completed_trials(env):
    proc = subprocess.Popen([sys.executable, "-m", "asrcompress.cli", *search_args(env, trials=4)], cwd=env["cwd"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            time.sleep(1)
            try:
                s = study_of(env)
            except Exception:
                continue
            states = [t.state for t in s.get_trials()]
            if TrialState.COMPLETE in states and states[-1] == TrialState.RUNNING:
                break
        else:
            pytest.fail("the search never reached a running trial after a completed one")
        # A random point inside the running trial (training, scoring or saving): the checks
        # below must hold wherever the kill lands.
        delay = random.Random().uniform(0.0, 2.0)
        print(f"killing the driver {delay:.2f} s into a running trial")
        time.sleep(delay)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {t.number: t.values for t in study_of(env).get_trials() if t.state == TrialState.COMPLETE}
    p = cli(env["cwd"], *search_args(env, trials=4))
    assert p.returncode == 0, p.stderr[-3000:]
    study = study_of(env)
    after = {t.number: t.values for t in study.get_trials() if t.state == TrialState.COMPLETE}
    assert all(after[n] == v for n, v in before.items())  # nothing completed was lost or redone
    stale = [t for t in study.get_trials() if t.user_attrs.get("stale")]
    assert len(stale) <= 1 and all(t.state == TrialState.FAIL for t in stale)  # 0 if it had just finished
    for t in stale:  # the interrupted trial was run again, once
        assert len([r for r in study.get_trials() if r.user_attrs.get("retry_of") == t.number]) == 1
    counted = [t for t in study.get_trials() if not t.user_attrs.get("stale")]
    assert len(counted) == 4 and all(t.state != TrialState.RUNNING for t in counted)
    assert len({t.number for t in study.get_trials()}) == len(study.get_trials())
    runs = [r for r in mlflow_runs(env) if r.data.tags.get("asrcompress_role") == "trial"]
    assert all(r.info.status != "RUNNING" for r in mlflow_runs(env))
    front = {t.number for t in study.best_trials}
    assert {int(r.data.tags["trial"]) for r in runs if r.data.tags["pareto"] == "true"} == front


@needs_synth
@pytest.mark.parametrize("after, reverted", [(0.5, True), (0.1, False)])
def test_distillation_that_hurts_dev_wer_is_undone(env, monkeypatch, after, reverted):
    """Recovery keeps the better of before/after on dev: a harmful KD run is reverted."""
    from asrcompress.models import load_model
    from asrcompress.search import _trial, load_space
    from asrcompress.search._trial import Context, run_trial

    space = load_space(env["space"])
    from asrcompress.hardware import load_profiles

    ctx = Context.load(env["model"], env["corpus"], space, load_profiles(REPO / "hardware_profiles", space.profiles),
                       env["cwd"] / "work", 8, 8)

    def scramble(student, *args, **kwargs):  # stands in for a distillation run
        with torch.no_grad():
            for p in student.parameters():
                p.add_(0.1 * torch.randn_like(p))

    wers = iter([0.2, after])  # before KD, after KD (no early check: there is no front yet)
    from asrcompress.compression import _recover

    monkeypatch.setattr(_recover, "distill", lambda *a, **k: scramble(*a, **k) or {"loss_first": 1.0, "loss_last": 1.0})
    monkeypatch.setattr(_trial, "evaluate", lambda *a, **k: {"wer": next(wers)})
    policy = {"version": 1, "rules": [{"name": "head", "prune": {"sparsity": 0.0}}],
              "distill": {"steps": 3, "temperature": 2.0, "alpha": 0.5, "lr": 1e-4}}
    result = run_trial(ctx, policy, 0, None)
    assert result.kd_reverted == reverted and result.objectives["wer"] == (0.2 if reverted else after)
    saved = load_model(Path(result.model_dir)).state_dict()
    same = all(torch.equal(v, ctx.base.state_dict()[k]) for k, v in saved.items())
    assert same == reverted


@pytest.mark.slow
@needs_synth
def test_compress_builds_the_same_model_as_a_trial(env, tmp_path):
    """One walk: `compress` with a trial's policy, seed (its number) and data settings writes
    bit-identical weights to the trial's (distillation, keep-the-better and all)."""
    import yaml
    from safetensors.torch import load_file

    p = cli(env["cwd"], *search_args(env, trials=1))
    assert p.returncode == 0, p.stderr[-3000:]
    trial = study_of(env).get_trials()[0]
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["policy"]["distill"]["steps"] == 2
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(trial.user_attrs["policy"]))
    out = tmp_path / "compressed"
    p = cli(env["cwd"], "compress", "--model", str(env["model"]), "--policy", str(tmp_path / "policy.yaml"),
            "--corpus", str(env["corpus"]), "--out", str(out), "--seed", str(trial.number),
            "--dev-utterances", "4", "--kd-utterances", "8")
    assert p.returncode == 0, p.stderr[-3000:]
    a = load_file(Path(trial.user_attrs["model_dir"]) / "model.safetensors")
    b = load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((out / "compression.json").read_text())["distill"]["reverted"] == bool(
        trial.user_attrs["kd_reverted"])
