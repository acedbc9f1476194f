"""The data that ships inside the package: spaces, hardware profiles, example policies and the
base model. CLI defaults resolve here, so commands work from any folder and from a wheel."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

KINDS = {"space": ("spaces", ".yaml"), "policy": ("policies", ".yaml"), "profile": ("hardware_profiles", ".yaml")}


def shipped(relative: str) -> Path:
    return Path(str(files("asrcompress") / "shipped" / relative))


def base_model() -> Path:
    return shipped("models/conformer_ctc_base")


def profiles_dir() -> Path:
    return shipped("hardware_profiles")


def resolve(kind: str, given: Path) -> Path:
    """`given` as a path when it exists (or looks like one), else the shipped file of that name:
    `--space quick` is the shipped spaces/quick.yaml."""
    given = Path(given)
    if given.exists() or len(given.parts) > 1 or given.suffix:
        return given
    folder, suffix = KINDS[kind]
    candidate = shipped(folder) / f"{given.name}{suffix}"
    return candidate if candidate.is_file() else given
