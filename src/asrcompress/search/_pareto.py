"""Pareto front helpers. Optuna has no public hypervolume, so its private one is wrapped here."""

from __future__ import annotations

import numpy as np


def hypervolume(points: list[list[float]], reference: list[float]) -> float:
    """Hypervolume (minimisation) of `points` below `reference`; points outside it count zero."""
    from optuna._hypervolume import compute_hypervolume

    pts = np.array([p for p in points if all(v < r for v, r in zip(p, reference))], dtype=float)
    if len(pts) == 0:
        return 0.0
    return float(compute_hypervolume(pts, np.array(reference, dtype=float)))


def reference_point(base: dict[str, float], objectives: list[str]) -> list[float]:
    """Fixed per study, from the base's values, as each objective's registry entry says (error
    rates: twice the base plus 2 points; costs: 1.1x the base)."""
    from ..objectives import reference_values

    return reference_values(base, objectives)


def knee(values: list[list[float]]) -> int:
    """Index of the front point closest to the ideal point after min-max scaling."""
    v = np.array(values, dtype=float)
    span = np.where(v.max(0) > v.min(0), v.max(0) - v.min(0), 1.0)
    scaled = (v - v.min(0)) / span
    return int(np.argmin(np.linalg.norm(scaled, axis=1)))
