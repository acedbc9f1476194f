"""Append-only JSON-lines files that survive a kill mid-write (the sensitivity scan's rows,
the surrogate's unit prices): a line cut short is skipped on reading, and the next row
starts on a line of its own."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path


class JsonlLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._text = self.path.read_text() if self.path.is_file() else ""
        self._cut = bool(self._text) and not self._text.endswith("\n")

    def rows(self) -> Iterator[dict]:
        """The whole JSON objects the file held when opened, in order."""
        for line in self._text.splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short when a run was killed mid-write
                continue
            if isinstance(row, dict):
                yield row

    def append(self, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(("\n" if self._cut else "") + json.dumps(row) + "\n")
        self._cut = False


def kd_loader(corpus: Path, kd_utterances: int) -> Callable[[], tuple[list, list]] | None:
    """A loader of `kd_utterances` training utterances that reads them on its first call only;
    None when the corpus has no train split or none are asked for (options that calibrate are
    then skipped)."""
    from ..compression import load_kd_data

    if not (Path(corpus) / "train.jsonl").is_file() or kd_utterances <= 0:
        return None
    data: list = []

    def kd() -> tuple[list, list]:
        if not data:
            data.append(load_kd_data(corpus, kd_utterances))
        return data[0]

    return kd
