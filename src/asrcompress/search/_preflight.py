"""Checks that fail a search in its first second, not after an hour: every folder it writes
to is writable, and the disk holding the trial models has room for them."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from ..errors import UserError
from ..tracking import ARTIFACTS

MARGIN_BYTES = 200 * 2**20  # MLflow, journal, logs and a few ONNX exports


def _writable(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise UserError(f"{folder}: {what} is not writable ({e.strerror or e}); nothing was started") from None


def _reachable(uri: str) -> None:
    """An MLflow server answers (MLflow's own client would retry for minutes first)."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).close()
    except urllib.error.HTTPError:
        return  # something answered; MLflow reports its own errors from here on
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise UserError(f"--tracking-uri {uri}: cannot reach the MLflow server ({reason}); nothing was started") from None


def trial_model_bytes(model_dir: Path) -> int:
    """A trial keeps one model folder about the size of the base model's."""
    return sum(p.stat().st_size for p in Path(model_dir).glob("*") if p.is_file())


def preflight(cfg: dict, free_bytes=None) -> None:
    """`free_bytes(path)` is shutil.disk_usage's free figure unless a test passes its own."""
    model, budget, workdir = Path(cfg["model"]), cfg["budget"], Path(cfg["workdir"])
    _writable(workdir, "the trial model folder")
    uri = cfg["tracking_uri"]
    if uri.startswith(("http://", "https://")):
        _reachable(uri)
    if uri.startswith("sqlite:///"):
        _writable(Path(uri.removeprefix("sqlite:///")).parent, "the MLflow store's folder")
        _writable(Path(ARTIFACTS).resolve(), "the MLflow artifact folder")
    if cfg["storage"].startswith("journal:"):
        _writable(Path(cfg["storage"].removeprefix("journal:")).parent, "the Optuna journal's folder")
    need = budget * trial_model_bytes(model) + MARGIN_BYTES
    free = (free_bytes or (lambda p: shutil.disk_usage(p).free))(workdir)
    if free < need:
        raise UserError(f"{workdir}: only {free / 2**20:,.0f} MB free; {budget} trials keep about "
                        f"{need / 2**20:,.0f} MB of models and logs there (free space, or lower --trials)")
