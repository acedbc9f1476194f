"""The benchmark's resumable state: what a stopped run already finished is kept and reused.

A run's folder is `WORKDIR/<key>`, the key a hash of what its results depend on (the base
model's sha256, the test set's fingerprint, the space, the budget, the scoring sizes), so the
same command continues its own run and a changed one starts its own; more `--seeds` extend it.
Inside, `state.json` holds each finished step (an arm and seed, a peer, the uniform policies)
and `scores/` each scored point's per-utterance errors, keyed by the point file's sha256.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .._outputs import write_text


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source_fingerprint() -> str:
    """The package's Python sources, hashed: a bench run resumed on other code says so."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def run_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class State:
    """A JSON document of finished steps, rewritten atomically after each one."""

    def __init__(self, folder: Path, key_parts: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "state.json"
        self.doc: dict = json.loads(self.path.read_text()) if self.path.is_file() else {"key": key_parts, "steps": {}}
        (self.folder / "scores").mkdir(exist_ok=True)

    def code(self, fingerprint: str) -> list[str]:
        """The source fingerprints this run was made by, oldest first (`fingerprint` added when new)."""
        seen = self.doc.setdefault("code", [])
        if not seen or seen[-1] != fingerprint:
            seen.append(fingerprint)
            write_text(self.path, json.dumps(self.doc, indent=1, default=str) + "\n")
        return list(seen)

    def done(self, step: str) -> Any | None:
        return self.doc["steps"].get(step)

    def finish(self, step: str, result: Any) -> Any:
        self.doc["steps"][step] = result
        write_text(self.path, json.dumps(self.doc, indent=1, default=str) + "\n")
        return result

    def score_path(self, point_file: Path) -> Path:
        return self.folder / "scores" / f"{file_sha256(point_file)[:24]}.json"
