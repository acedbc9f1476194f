"""Word n-gram language model: estimated with kaldingram (Kneser-Ney), read from ARPA."""

from __future__ import annotations

import contextlib
import io
import math
import re
from pathlib import Path

from ..errors import UserError

_LN10 = math.log(10.0)
# Log10 probability given to a word the LM never saw (it is in the lexicon, not in training text).
OOV_LOG10 = -7.0


def estimate_arpa(sentences: list[str], out: Path, order: int = 4) -> None:
    """Kneser-Ney ARPA model from training sentences only (never dev or test text)."""
    from kaldingram.train import NgramCounts

    buf = io.StringIO()
    # kaldingram draws tqdm bars on stderr for every n-gram order; keep the console clean.
    with contextlib.redirect_stderr(io.StringIO()):
        counts = NgramCounts(order)
        for s in sentences:
            counts.add_raw_counts_from_line(s)
        counts.cal_discounting_constants()
        counts.cal_f()
        counts.cal_bow()
        counts.print_as_arpa(fout=buf)
    Path(out).write_text(buf.getvalue())


class NgramLM:
    """Back-off n-gram scoring in natural-log units."""

    def __init__(self, arpa_path: Path) -> None:
        self.order = 0
        self.prob: dict[tuple[str, ...], float] = {}
        self.backoff: dict[tuple[str, ...], float] = {}
        self._memo: dict[tuple[tuple[str, ...], str], float] = {}  # a beam asks the same n-gram many times
        self._read(Path(arpa_path))

    def _read(self, path: Path) -> None:
        if not path.is_file():
            raise UserError(f"{path}: language model file not found")
        section = 0
        header = re.compile(r"^\\(\d+)-grams:")
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = line.strip()
            if not line or line in ("\\data\\", "\\end\\") or line.startswith("ngram "):
                continue
            m = header.match(line)
            if m:
                section = int(m.group(1))
                self.order = max(self.order, section)
                continue
            parts = line.split()
            if section == 0 or len(parts) < section + 1:
                raise UserError(f"{path}:{lineno}: malformed ARPA line")
            words = tuple(parts[1 : 1 + section])
            self.prob[words] = float(parts[0])
            if len(parts) > section + 1:
                self.backoff[words] = float(parts[section + 1])
        if self.order == 0:
            raise UserError(f"{path}: no n-gram sections found (not an ARPA file)")

    def log10_prob(self, context: tuple[str, ...], word: str) -> float:
        context = context[-(self.order - 1) :] if self.order > 1 else ()
        penalty = 0.0
        while True:
            p = self.prob.get((*context, word))
            if p is not None:
                return p + penalty
            if not context:
                return OOV_LOG10 + penalty
            penalty += self.backoff.get(context, 0.0)
            context = context[1:]

    def score(self, context: tuple[str, ...], word: str) -> float:
        """ln P(word | context)."""
        key = (context, word)
        s = self._memo.get(key)
        if s is None:
            s = self._memo[key] = self.log10_prob(context, word) * _LN10
        return s

    def words(self) -> list[str]:
        return sorted(w[0] for w in self.prob if len(w) == 1 and w[0] not in ("<s>", "</s>", "<unk>"))
