"""The objective registry: what a search can minimise or constrain, one entry per objective.

An entry declares its name pattern and unit, its direction, the value a stopped trial reports
(`worst`), its hypervolume reference, and how it is measured on a `Probe` (the trial's view of
one compressed model). Space validation, constraints, the Pareto front's reference point, the
Ray report, `front` and export iterate over `OBJECTIVES`; a new objective is one `register`.

Names: a plain name (`wer`, `cer`, `memory`, `size`) or a family with an argument after `@`
(`latency@PROFILE`, `wer@SLICE`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Probe(Protocol):
    """What a measure function may ask of one model (the search builds it, and caches)."""

    def wer(self, slice_name: str | None = None) -> float:
        """Dev WER (fraction), on the whole scored dev set or on one declared slice of dev."""

    def cer(self) -> float:
        """Dev CER (fraction)."""

    def stored_bytes(self) -> int:
        """Bytes the deployment stores (the size report's total)."""

    def peak_activation_bytes(self) -> int:
        """The largest activation of the exported graph at the reference input."""

    def latency_ms(self, profile: str) -> float:
        """One reference utterance on a hardware profile (measured or predicted)."""


@dataclass(frozen=True)
class Objective:
    key: str  # "wer", or the family head: "latency" for latency@PROFILE
    unit: str
    doc: str
    measure: Callable[[Probe, str | None], float]  # (probe, argument after @ or None) -> value
    worst: Callable[[float], float]  # the base's value -> what a stopped trial reports
    reference: Callable[[float], float]  # the base's value -> hypervolume reference
    family: str = ""  # the argument's name when the objective takes one: KEY@ARG (latency@PROFILE)
    direction: str = "minimize"
    digits: int = 2  # decimals in tables

    @property
    def slot(self) -> str:
        """Registry key: `wer` and `wer@` are two entries."""
        return f"{self.key}@" if self.family else self.key

    def name_pattern(self) -> str:
        return rf"{self.key}@[A-Za-z0-9_\-.=]+" if self.family else re.escape(self.key)


OBJECTIVES: dict[str, Objective] = {}


def register_objective(obj: Objective) -> Objective:
    if obj.direction != "minimize":
        raise ValueError(f"objective {obj.key}: only minimised objectives are supported (negate a maximised one)")
    OBJECTIVES[obj.slot] = obj
    return obj


def unregister_objective(key: str) -> None:
    OBJECTIVES.pop(key)


def lookup(name: str) -> tuple[Objective, str | None]:
    """The entry and argument of an objective name; KeyError when no entry matches."""
    head, at, arg = name.partition("@")
    obj = OBJECTIVES.get(head + at)
    if obj is None or not re.fullmatch(obj.name_pattern(), name):
        raise KeyError(name)
    return obj, (arg if at else None)


def describe() -> str:
    """The accepted names, for error messages: "wer, cer, memory, size, latency@PROFILE, wer@SLICE"."""
    return ", ".join(f"{o.key}@{o.family}" if o.family else o.key for o in OBJECTIVES.values())


def measure(probe: Probe, names: list[str]) -> dict[str, float]:
    out = {}
    for name in names:
        obj, arg = lookup(name)
        out[name] = float(obj.measure(probe, arg))
    return out


def worst_values(base: dict[str, float], names: list[str]) -> dict[str, float]:
    return {n: lookup(n)[0].worst(base[n]) for n in names}


def reference_values(base: dict[str, float], names: list[str]) -> list[float]:
    return [lookup(n)[0].reference(base[n]) for n in names]


def digits(name: str) -> int:
    try:
        return lookup(name)[0].digits
    except KeyError:
        return 4


def _error_rate_reference(base: float) -> float:
    return 2 * base + 0.02  # twice the base's error plus 2 points


def _cost_reference(base: float) -> float:
    return 1.1 * base  # 10% above the uncompressed model


def _error_rate_worst(base: float) -> float:
    # At or beyond the reference, so a stopped trial never adds hypervolume.
    return max(1.0, _error_rate_reference(base))


register_objective(Objective(
    "wer", "fraction", "word error rate on the scored dev utterances", lambda p, _: p.wer(None),
    worst=_error_rate_worst, reference=_error_rate_reference, digits=4))
register_objective(Objective(
    "cer", "fraction", "character error rate on the scored dev utterances", lambda p, _: p.cer(),
    worst=_error_rate_worst, reference=_error_rate_reference, digits=4))
register_objective(Objective(
    "memory", "MB", "stored bytes plus the largest activation, in MB",
    lambda p, _: (p.stored_bytes() + p.peak_activation_bytes()) / 1e6, worst=lambda base: 10 * base,
    reference=_cost_reference))
register_objective(Objective(
    "size", "MB", "stored bytes of the deployed model, in MB", lambda p, _: p.stored_bytes() / 1e6,
    worst=lambda base: 10 * base, reference=_cost_reference))
register_objective(Objective(
    "latency", "ms per profile", "one 8 s utterance on a hardware profile, in ms",
    lambda p, arg: p.latency_ms(arg), worst=lambda base: 10 * base, reference=_cost_reference, family="PROFILE"))
register_objective(Objective(
    "wer", "fraction", "word error rate on a slice of dev (declared in the space's `slices`, or FIELD=VALUE)",
    lambda p, arg: p.wer(arg), worst=_error_rate_worst, reference=_error_rate_reference, family="SLICE", digits=4))
