"""Fault injection in the search loop: trials that raise, return NaN or run out of time are
recorded as failed with the reason (in Optuna and MLflow) and the study completes its budget;
a search that could not write its results stops before it starts."""

import math

import optuna
import pytest
from optuna.trial import TrialState

from asrcompress.errors import UserError

from ..conftest import REPO, needs_synth
from .test_search import SPACE, mlflow_runs, study_of


@pytest.fixture()
def cfg(tmp_path, tiny_corpus, monkeypatch):
    from asrcompress.cli import _search_cfg
    from asrcompress.models import save_model

    from ..compression.models import conformer

    monkeypatch.chdir(tmp_path)
    save_model(conformer(), tmp_path / "tiny")
    (tmp_path / "space.yaml").write_text(SPACE)
    c = _search_cfg(tmp_path / "space.yaml", tmp_path / "tiny", tiny_corpus, 4, "random", None, "f", 1, None, 0,
                    4, 8, REPO / "hardware_profiles")
    return c | {"baselines": False, "env": {"cwd": tmp_path, "study": "f"}}


def _runs_by_trial(env) -> dict[int, object]:
    return {int(r.data.tags["trial"]): r for r in mlflow_runs(env) if r.data.tags.get("asrcompress_role") == "trial"}


@needs_synth
def test_raising_and_nan_trials_fail_with_their_reason_and_the_study_goes_on(cfg, monkeypatch):
    from asrcompress.search import _run, _trial

    real_run, real_objectives = _run.run_trial, _trial.objectives_of

    def run_trial(ctx, policy, number, worst):
        if number == 0:
            raise RuntimeError("injected fault")
        return real_run(ctx, policy, number, worst)

    def objectives_of(ctx, model, states, out, wer=None):
        values = real_objectives(ctx, model, states, out, wer)
        return values | {"wer": math.nan} if out.name == "trial_0001" else values

    monkeypatch.setattr(_run, "run_trial", run_trial)
    monkeypatch.setattr(_trial, "objectives_of", objectives_of)
    _run.run_search(cfg)

    trials = study_of(cfg["env"]).get_trials()
    assert len(trials) == 4 and len({t.number for t in trials}) == 4  # budget used, no duplicate
    by_number = {t.number: t for t in trials}
    assert by_number[0].state == TrialState.FAIL and "RuntimeError: injected fault" in by_number[0].user_attrs["reason"]
    assert by_number[1].state == TrialState.FAIL and by_number[1].user_attrs["reason"] == "non-finite objective wer"
    assert {by_number[2].state, by_number[3].state} <= {TrialState.COMPLETE, TrialState.PRUNED}
    runs = _runs_by_trial(cfg["env"])
    assert set(runs) == {0, 1, 2, 3} and all(r.info.status != "RUNNING" for r in runs.values())
    for n in (0, 1):
        assert runs[n].info.status == "FAILED" and runs[n].data.tags["reason"] == by_number[n].user_attrs["reason"]
        assert runs[n].data.tags["pareto"] == "false"
    front = {t.number for t in study_of(cfg["env"]).best_trials}
    assert {n for n, r in runs.items() if r.data.tags["pareto"] == "true"} == front


@needs_synth
def test_a_trial_over_its_time_budget_fails_with_the_reason(cfg):
    from asrcompress.search import _run

    _run.run_search(cfg | {"budget": 2, "trial_timeout_s": 1e-3})
    study = study_of(cfg["env"])
    trials = study.get_trials()
    assert len(trials) == 2 and all(t.state == TrialState.FAIL for t in trials)
    assert all(t.user_attrs["reason"].startswith("timed out:") and "trial budget of 0.001 s" in t.user_attrs["reason"]
               for t in trials)
    assert study.user_attrs["trial_timeout_s"] == 1e-3
    assert all(r.info.status == "FAILED" for r in _runs_by_trial(cfg["env"]).values())


class TestPreflight:
    def test_unwritable_tracking_folder_stops_before_anything_runs(self, cfg, tmp_path):
        from asrcompress.search import _run

        blocker = tmp_path / "not_a_dir"
        blocker.write_text("a file where a folder should be")
        bad = cfg | {"tracking_uri": f"sqlite:///{blocker / 'mlruns' / 'mlflow.db'}"}
        with pytest.raises(UserError, match=r"not_a_dir/mlruns: the MLflow store's folder is not writable"):
            _run.prepare(bad)
        assert not (tmp_path / "mlruns" / "optuna").exists()  # no study was created

    def test_unwritable_trial_folder(self, cfg, tmp_path):
        from asrcompress.search._preflight import preflight

        (tmp_path / "ro").write_text("")
        with pytest.raises(UserError, match="ro/studies: the trial model folder is not writable"):
            preflight(cfg | {"workdir": str(tmp_path / "ro" / "studies")})

    def test_a_disk_without_room_for_the_trials_is_refused_up_front(self, cfg):
        from asrcompress.search._preflight import preflight, trial_model_bytes

        per_trial = trial_model_bytes(cfg["model"])
        assert per_trial > 0
        with pytest.raises(UserError, match=r"only 10 MB free; 4 trials keep about \d+ MB"):
            preflight(cfg, free_bytes=lambda _: 10 * 2**20)
        preflight(cfg, free_bytes=lambda _: 10 * 2**30)  # enough room: no error

    def test_cli_exit_is_one_line(self, cfg, tmp_path):
        from ..test_cli import assert_one_line_error, run

        blocker = tmp_path / "blocker"
        blocker.write_text("")
        p = run("search", "--space", cfg["space"], "--model", cfg["model"], "--corpus", cfg["corpus"], "--trials", "1",
                "--tracking-uri", f"sqlite:///{blocker}/x/mlflow.db", "--study", "pre")
        assert_one_line_error(p, "blocker/x", "not writable")
