"""A study's settings live with the study: a joining worker needs only --study and --storage and
scores with the study's settings; resuming with another model, corpus, space or scoring setting
is refused, naming the difference, and leaves the study unchanged."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from asrcompress.errors import UserError

from ..conftest import REPO, needs_synth
from ..test_errors import one_error_line, run_cli
from .test_search import SPACE, cli


def journal_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_corpus):
    """A study created with 7 dev utterances (of the corpus's 8), a space and profiles that are
    deleted afterwards (the study holds their content), and no trial run yet."""
    from asrcompress.cli import _search_cfg
    from asrcompress.models import save_model
    from asrcompress.search import prepare

    from ..compression.models import conformer

    root = tmp_path_factory.mktemp("settings")
    save_model(conformer(), root / "tiny")
    (root / "gone").mkdir()
    (root / "gone" / "space.yaml").write_text(SPACE)
    shutil.copytree(REPO / "hardware_profiles", root / "gone" / "profiles")
    storage = f"journal:{root / 'shared' / 's.journal'}"
    cfg = _search_cfg(root / "gone" / "space.yaml", root / "tiny", tiny_corpus, 2, "random", storage, "s", 1,
                      f"sqlite:///{root / 'mlruns' / 'mlflow.db'}", 0, 7, 8, root / "gone" / "profiles")
    prepare(cfg)  # its baselines (uniform int8, int4, 50% sparse) are queued: the worker's trials are valid ones
    shutil.rmtree(root / "gone")
    return {"root": root, "storage": storage, "journal": root / "shared" / "s.journal", "model": root / "tiny",
            "corpus": tiny_corpus}


def _load(env):
    import optuna

    from asrcompress.search import open_storage

    return optuna.load_study(study_name="s", storage=open_storage(env["storage"]))


@needs_synth
def test_a_joining_worker_needs_only_study_and_storage_and_uses_the_study_settings(study):
    elsewhere = study["root"] / "another-folder"
    elsewhere.mkdir()
    p = cli(elsewhere, "worker", "--study", "s", "--storage", study["storage"])
    assert p.returncode == 0, p.stderr[-3000:]
    trials = [t for t in _load(study).get_trials() if t.state.is_finished()]
    done = [t for t in trials if "dev_utterances" in t.user_attrs]
    assert len(trials) == 2 and len(done) == 2  # the study's budget of 2, not a default of the command
    assert all(t.user_attrs["dev_utterances"] == 7 for t in done)  # the study's 7, not 100
    assert all(t.user_attrs["kd_utterances"] == 8 for t in done)
    assert not (elsewhere / "mlruns").exists()  # its trials went to the study's MLflow store and folder


def _resume(study, *extra: str) -> list[str]:
    return ["search", "--study", "s", "--storage", study["storage"], "--strategy", "one-stage", *extra]


def _other_model(study) -> Path:
    import torch

    from asrcompress.models import load_model, save_model

    m = load_model(study["model"])
    with torch.no_grad():
        next(m.parameters()).add_(1.0)
    save_model(m, study["root"] / "other-model")
    return study["root"] / "other-model"


def _other_corpus(study) -> Path:
    other = study["root"] / "other-corpus"
    if not other.exists():
        shutil.copytree(study["corpus"], other)
        lines = (other / "dev.jsonl").read_text().splitlines()
        (other / "dev.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    return other


@needs_synth
@pytest.mark.parametrize("option, value, says", [
    ("--model", _other_model, "--model"),
    ("--corpus", _other_corpus, "--corpus"),
    ("--space", lambda s: (s["root"] / "other.yaml", (s["root"] / "other.yaml").write_text(
        SPACE.replace("[null, 8, 4]", "[null, 8]")))[0], "--space differs from the space stored in the study"),
    ("--dev-utterances", lambda s: "9", "--dev-utterances 9 differs from the study's 7"),
], ids=["model", "corpus", "space", "dev-utterances"])
def test_resuming_with_other_settings_is_refused_and_the_study_is_unchanged(study, option, value, says):
    before = journal_sha(study["journal"])
    line = one_error_line(*run_cli(_resume(study, option, str(value(study))), study["root"]))
    assert "study 's'" in line and says in line and "pick another --study" in line, line
    if option in ("--model", "--corpus"):
        assert "differs from the study's" in line and "sha256" in line
    assert journal_sha(study["journal"]) == before


@needs_synth
def test_the_same_settings_given_again_are_accepted(study):
    from asrcompress.search._settings import settings_for, study_settings

    stored = study_settings(_load(study))
    again = settings_for({"study": "s", "model": str(study["model"]), "corpus": str(study["corpus"]),
                          "dev_utterances": 7, "budget": 5, "given": ["model", "corpus", "dev_utterances", "budget"]},
                         stored)
    assert again.budget == 5 and again.model_sha256 == stored.model_sha256  # the budget may grow
    assert settings_for({"study": "s", "given": []}, stored) == stored


def test_settings_round_trip_and_refuse_another_version():
    from asrcompress.search._settings import SearchConfig

    cfg = SearchConfig(space_name="q", space_yaml=SPACE, model="/m", model_sha256="a" * 64, corpus="/c",
                       corpus_fingerprint="b" * 64, profiles={}, workdir="/w", budget=3, dev_utterances=7)
    assert SearchConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(UserError, match="another asrcompress version"):
        SearchConfig.from_dict(cfg.to_dict() | {"version": 99})
    with pytest.raises(UserError, match="another asrcompress version"):
        SearchConfig.from_dict(cfg.to_dict() | {"surprise": 1})


@needs_synth
def test_a_worker_refuses_a_model_that_changed_under_the_study(study, tmp_path):
    """The study names its model by path and sha256: a worker whose copy differs stops at once."""
    from asrcompress.search import work

    shutil.copytree(study["root"], tmp_path / "copy", ignore=shutil.ignore_patterns("mlruns"))
    journal = tmp_path / "copy" / "shared" / "s.journal"
    model = Path(_load(study).user_attrs["settings"]["model"])
    saved = (model / "config.json").read_text()
    try:
        (model / "config.json").write_text(saved.replace('"dropout": 0.0', '"dropout": 0.5'))
        with pytest.raises(UserError, match="differs from the one the study was started with"):
            work({"study": "s", "storage": f"journal:{journal}", "threads": 1, "seed": None})
    finally:
        (model / "config.json").write_text(saved)


def test_ray_backend_without_the_extra_names_the_extra(monkeypatch):
    import importlib.util

    from asrcompress.errors import UserError
    from asrcompress.search._ray import require_ray

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(UserError, match=r"pip install 'asrcompress\[ray\]'"):
        require_ray()


def test_the_budget_lock_makes_count_and_ask_one_step_across_processes(tmp_path):
    """A second process waits for the first's budget lock (journal storage: a flock beside the
    journal), so two workers can never both take the last place of a budget."""
    import subprocess
    import sys
    import time

    from asrcompress.search._study import budget_lock

    url = f"journal:{tmp_path / 's.journal'}"
    code = ("import sys, time; from asrcompress.search._study import budget_lock\n"
            f"with budget_lock({url!r}, 's'):\n    print(time.time())")
    with budget_lock(url, "s"):
        p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        time.sleep(3.0)
        released = time.time()
    taken = float(p.communicate(timeout=60)[0])
    assert taken >= released
