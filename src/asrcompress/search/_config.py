"""The search driver's settings from what a user gave (the CLI's options, or `asrcompress.search`)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError


def driver_config(*, space: Path | str | None = None, model: Path | None = None, corpus: Path | None = None,
                  trials: int | None = None, sampler: str | None = None, storage: str | None = None,
                  study: str | None = None, workers: int = 1, tracking_uri: str | None = None, seed: int = 0,
                  dev_utterances: int | None = None, kd_utterances: int | None = None, profiles: Path | None = None,
                  trial_timeout_s: float | None = None, heartbeat_grace_s: float | None = None) -> dict:
    """The driver's settings. A new study takes defaults for what is not given (the shipped base
    model and profiles); a resumed one keeps its stored settings, and `given` says which of
    them the user named (a named fixed setting that differs is refused)."""
    from .._shipped import base_model, profiles_dir, resolve
    from ..tracking import tracking_uri as resolve_uri
    from ._study import default_storage

    if trials is not None and trials < 1:
        raise UserError(f"--trials {trials} must be at least 1")
    if workers < 1:
        raise UserError(f"--workers {workers} must be at least 1")
    if space is None and study is None:
        raise UserError("give --space (a new study) or --study (resume one)")
    space = resolve("space", Path(space)) if space is not None else None
    name = study or space.stem
    given = {k for k, v in {"space": space, "model": model, "corpus": corpus, "budget": trials, "sampler": sampler,
                            "tracking_uri": tracking_uri, "dev_utterances": dev_utterances,
                            "kd_utterances": kd_utterances, "profiles": profiles, "trial_timeout_s": trial_timeout_s,
                            "heartbeat_grace_s": heartbeat_grace_s}.items() if v is not None}
    return {
        "space": str(space.resolve()) if space else None, "model": str(Path(model or base_model()).resolve()),
        "corpus": str(Path(corpus or "data/default").resolve()),
        "profiles": str(Path(profiles or profiles_dir()).resolve()),
        "budget": trials or 20, "sampler": sampler or "tpe", "seed": seed,
        "storage": storage or default_storage(name), "study": name, "workers": workers,
        "tracking_uri": resolve_uri(tracking_uri), "workdir": str((Path("mlruns") / "studies" / name).resolve()),
        "dev_utterances": dev_utterances or 100, "kd_utterances": kd_utterances or 2000,
        "trial_timeout_s": trial_timeout_s, "heartbeat_grace_s": heartbeat_grace_s or 120.0,
        "threads": 1 if workers > 1 else max(1, (os.cpu_count() or 1)), "given": sorted(given),
    }
