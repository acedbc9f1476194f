"""WER and CER as fractions, computed by jiwer; per-utterance errors and the paired bootstrap
interval of one model's WER over another's."""

from __future__ import annotations

import jiwer
import numpy as np


def wer(refs: list[str], hyps: list[str]) -> float:
    if not refs:
        raise ValueError("WER needs at least one reference")
    return float(jiwer.wer(refs, [h if h else "" for h in hyps]))


def cer(refs: list[str], hyps: list[str]) -> float:
    if not refs:
        raise ValueError("CER needs at least one reference")
    return float(jiwer.cer(refs, hyps))


def utterance_errors(refs: list[str], hyps: list[str]) -> list[int]:
    """Word errors (substitutions + deletions + insertions) of each utterance."""
    out = jiwer.process_words(refs, [h if h else "" for h in hyps])
    return [sum(c.ref_end_idx - c.ref_start_idx if c.type in ("substitute", "delete") else
                (c.hyp_end_idx - c.hyp_start_idx if c.type == "insert" else 0) for c in chunks)
            for chunks in out.alignments]


def word_errors(refs: list[str], hyps: list[str], words: set[str] | None = None) -> tuple[int, int]:
    """(errors, count) over the reference words in `words` (all when None): a reference word
    counts as an error when the alignment substitutes or deletes it. Insertions belong to no
    reference word and are left out, so errors / count is that subset's word error rate."""
    out = jiwer.process_words(refs, [h if h else "" for h in hyps])
    errors = count = 0
    for ref, chunks in zip(out.references, out.alignments):
        for c in chunks:
            if c.type == "insert":
                continue
            span = ref[c.ref_start_idx:c.ref_end_idx]
            hit = [w for w in span if words is None or w in words]
            count += len(hit)
            if c.type != "equal":
                errors += len(hit)
    return errors, count


def out_of_lexicon(refs: list[str], hyps: list[str], lexicon: set[str]) -> dict:
    """How a decoder does on the reference words outside `lexicon`: their share of all
    reference words, and the word error rate on them alone."""
    ref_words = {w for r in refs for w in r.split()}
    oov = ref_words - lexicon
    errors, count = word_errors(refs, hyps, oov)
    total = sum(len(r.split()) for r in refs)
    return {"ool_share": count / total if total else 0.0, "ool_words": count,
            "ool_wer": errors / count if count else 0.0}


BOOTSTRAP = 1_000


def wer_ratio_ci(base_errors: list[int], errors: list[int], words: list[int], resamples: int = BOOTSTRAP,
                 seed: int = 0) -> tuple[float, tuple[float, float]]:
    """The point's WER over the base's, and its paired bootstrap 95% interval: utterances are
    resampled with replacement, the same resample for both models, `resamples` times."""
    base, point, n_words = np.asarray(base_errors), np.asarray(errors), np.asarray(words)
    if base.sum() == 0:
        return float("inf") if point.sum() else 1.0, (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(base), size=(resamples, len(base)))
    b, p = base[idx].sum(axis=1), point[idx].sum(axis=1)
    ratios = np.where(b > 0, p / np.maximum(b, 1), np.inf)
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    del n_words  # the words cancel in the ratio; kept in the signature so callers pass what they score
    return float(point.sum() / base.sum()), (float(lo), float(hi))
