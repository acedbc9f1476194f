"""The benchmark's statistics: per-utterance word errors, paired bootstrap intervals of a WER
ratio, and hypervolume of normalised objectives against a fixed reference box."""

from __future__ import annotations

import numpy as np

from ..objectives import utterance_errors, wer_ratio_ci  # noqa: F401  (re-exported for the bench)

# Normalised objectives (WER / base, latency / base, size / base). Only points at most 10% worse
# than the base on WER, and no slower or larger, add volume.
REFERENCE = (1.10, 1.0, 1.0)


def normalised_hypervolume(points: list[tuple[float, float, float]], reference: tuple[float, ...] = REFERENCE,
                           ) -> float:
    """Volume dominated by (WER ratio, latency ratio, size ratio) points inside the reference box."""
    from ..search import hypervolume

    return hypervolume([list(p) for p in points], list(reference))
