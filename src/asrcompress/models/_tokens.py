"""Character vocabulary for CTC: blank, word separator, apostrophe, a-z."""

from __future__ import annotations

import torch

BLANK = "-"
SEP = "|"
TOKENS: tuple[str, ...] = (BLANK, SEP, "'", *"abcdefghijklmnopqrstuvwxyz")
_INDEX = {t: i for i, t in enumerate(TOKENS)}


def encode(text: str) -> list[int]:
    """'hi you' -> ids of h i | y o u; characters outside the vocabulary are dropped."""
    return [_INDEX[c] for c in text.replace(" ", SEP) if c in _INDEX and c != BLANK]


def decode_ids(ids: list[int]) -> str:
    return "".join(TOKENS[i] for i in ids).replace(SEP, " ").strip()


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
    """Best path: argmax per frame, merge repeats, drop blanks. (N, T, V) -> N strings."""
    best = log_probs.argmax(dim=-1)
    texts = []
    for row, n in zip(best.tolist(), lengths.tolist()):
        out, prev = [], None
        for t in row[:n]:
            if t != prev and t != 0:
                out.append(t)
            prev = t
        texts.append(" ".join(decode_ids(out).split()))
    return texts
