"""Safe YAML reading with one-line errors naming the file (and line)."""

from __future__ import annotations

from pathlib import Path

import yaml

from .errors import UserError


def read_yaml(path: Path, what: str) -> object:
    """The parsed document of `path`; `what` names the file kind in the not-found error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise UserError(f"{path}: not valid YAML{f' at line {mark.line + 1}' if mark else ''}") from None
