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
