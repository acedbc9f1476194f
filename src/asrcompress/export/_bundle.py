"""Deployment bundle of one trial: policy, compressed weights, ONNX, model card, sha256 sums.

Figures in the card are measured again on the exported ONNX model, next to the search's.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import yaml

from .._json import read_json
from .._outputs import INCOMPLETE, MARKER
from ..errors import UserError

SUMS = "SHA256SUMS"
CARD_KEYS = frozenset({"study", "trial", "picked_by", "search", "measured_on_onnx", "wer_difference_points",
                       "decoder_for_test", "files", "registered"})
UNLISTED = (SUMS, MARKER, INCOMPLETE)  # written and removed after the sums, when the bundle is renamed into place


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_sums(folder: Path) -> None:
    lines = [f"{sha256(p)}  {p.relative_to(folder).as_posix()}" for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name not in UNLISTED]
    (folder / SUMS).write_text("\n".join(lines) + "\n")


def bundle_root(path: Path) -> Path | None:
    """The bundle folder that holds `path` (the bundle itself, its model/ or its model.onnx)."""
    path = Path(path)
    for folder in (path, path.parent) if path.is_dir() else (path.parent,):
        if (folder / SUMS).is_file():
            return folder
    return None


def verify_if_bundled(path: Path) -> None:
    """Loading from a bundle checks its sums first: a changed or corrupt file is refused."""
    root = bundle_root(path)
    if root is not None:
        verify_bundle(root, allow_extra=True)


def verify_bundle(folder: Path, allow_extra: bool = False) -> None:
    """Every file listed in SHA256SUMS is present and unchanged, and (unless `allow_extra`)
    nothing unlisted was added."""
    folder = Path(folder)
    sums = folder / SUMS
    if not sums.is_file():
        raise UserError(f"{folder}: no {SUMS}; not an asrcompress bundle")
    if (folder / INCOMPLETE).exists():
        raise UserError(f"{folder}: an unfinished bundle (its export was stopped); export it again")
    listed = {}
    for i, line in enumerate(sums.read_text().splitlines(), 1):
        digest, _, name = line.partition("  ")
        if not name:
            raise UserError(f"{sums}:{i}: malformed line")
        listed[name] = digest
    for name, digest in listed.items():
        path = folder / name
        if not path.is_file():
            raise UserError(f"{path}: listed in {SUMS} but missing")
        if sha256(path) != digest:
            raise UserError(f"{path}: sha256 does not match {SUMS} (file changed or corrupt)")
    if (folder / "model_card.json").is_file():
        read_json(folder / "model_card.json", CARD_KEYS, "bundle card")
    if allow_extra:
        return
    extra = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name not in UNLISTED
             and p.relative_to(folder).as_posix() not in listed]
    if extra:
        raise UserError(f"{folder / extra[0]}: not listed in {SUMS}")


def write_bundle(trial_model: Path, policy: dict, out: Path, card: dict) -> None:
    """Into `out`, a fresh folder from `output_folder`."""
    out = Path(out)
    model_out = out / "model"
    shutil.copytree(trial_model, model_out, ignore=shutil.ignore_patterns("*.onnx", "*.tmp", *UNLISTED))
    (out / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    (out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
