"""The package data ships in the wheel: installed in a fresh virtual environment outside the
repository, `asrcompress search --space quick` runs from /tmp with the shipped base model and
hardware profiles, with no --model and no --profiles."""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from .conftest import REPO, needs_synth


def _run(*cmd, cwd: Path | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, (cmd, p.stdout[-2000:], p.stderr[-3000:])
    return p


@pytest.mark.slow
@needs_synth
def test_an_installed_wheel_searches_from_tmp_with_the_shipped_defaults(tmp_path, tiny_corpus):
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, REPO)
    wheel = next(wheels.glob("asrcompress-*.whl"))
    venv = tmp_path / "venv"
    _run(getattr(sys, "_base_executable", sys.executable), "-m", "venv", venv)
    site = Path(_run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
                     ).stdout.strip())
    # The heavy dependencies (torch, onnxruntime, ...) come from this environment's site-packages,
    # added as a plain path: its editable install of asrcompress is not seen, the wheel is.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel)
    where = _run(venv / "bin" / "python", "-c", "import asrcompress; print(asrcompress.__file__)").stdout
    assert where.startswith(str(site)), where

    run_dir = tmp_path / "anywhere"
    run_dir.mkdir()
    p = _run(venv / "bin" / "asrcompress", "search", "--space", "quick", "--corpus", tiny_corpus, "--trials", "2",
             "--strategy", "one-stage", "--dev-utterances", "4", "--kd-utterances", "8", "--json", cwd=run_dir, timeout=1500)
    summary = json.loads(p.stdout)
    assert sum(summary["trials"].values()) == 2
    assert (run_dir / "mlruns" / "studies" / "quick").is_dir()  # its outputs are here, not in the package
    settings = json.loads(_run(venv / "bin" / "python", "-c", (
        "import json, optuna; from asrcompress.search import open_storage, default_storage; "
        "s = optuna.load_study(study_name='quick', storage=open_storage(default_storage('quick'))); "
        "print(json.dumps(s.user_attrs['settings']))"), cwd=run_dir).stdout)
    assert settings["model"].startswith(str(site)) and settings["model"].endswith("conformer_ctc_base")
    assert set(settings["profiles"]) == {"host"}
