"""The benchmark's statistics: per-utterance word errors, paired bootstrap intervals of a WER
ratio, and hypervolume of normalised objectives against a fixed reference box."""

from __future__ import annotations

import numpy as np

from ..objectives import utterance_errors  # noqa: F401  (re-exported for the bench)

BOOTSTRAP = 1_000
# Normalised objectives (WER / base, latency / base, size / base). Only points at most 10% worse
# than the base on WER, and no slower or larger, add volume.
REFERENCE = (1.10, 1.0, 1.0)


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


def normalised_hypervolume(points: list[tuple[float, float, float]], reference: tuple[float, ...] = REFERENCE,
                           ) -> float:
    """Volume dominated by (WER ratio, latency ratio, size ratio) points inside the reference box."""
    from ..search import hypervolume

    return hypervolume([list(p) for p in points], list(reference))
