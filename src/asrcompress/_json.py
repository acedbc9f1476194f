"""Strict JSON reading with one-line errors naming the file (and the key)."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError


def read_json(path: Path, known: frozenset[str] | None = None, what: str = "file") -> dict:
    """A JSON object file; with `known`, an unknown top-level key is refused, naming the file
    and the key (a typo must not be ignored silently)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} not found")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f"{e.msg}, line {e.lineno}" if isinstance(e, json.JSONDecodeError) else "not UTF-8 text"
        raise UserError(f"{path}: invalid JSON ({where})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: must hold a JSON object")
    unknown = sorted(set(doc) - known) if known is not None else []
    if unknown:
        raise UserError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    return doc
