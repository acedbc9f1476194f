"""WER and CER as fractions, computed by jiwer."""

from __future__ import annotations

import jiwer


def wer(refs: list[str], hyps: list[str]) -> float:
    if not refs:
        raise ValueError("WER needs at least one reference")
    return float(jiwer.wer(refs, [h if h else "" for h in hyps]))


def cer(refs: list[str], hyps: list[str]) -> float:
    if not refs:
        raise ValueError("CER needs at least one reference")
    return float(jiwer.cer(refs, hyps))
