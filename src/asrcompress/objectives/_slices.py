"""Slices of dev chosen by manifest fields: what `wer@SLICE` is measured on.

A space declares named slices as conditions joined by `and`:
    slices:
      noisy: "snr_db <= 10"               # augmented with additive noise at 10 dB SNR or less
      flite: "engine == flite"
An objective may also name a slice inline as FIELD=VALUE (`wer@accent=scottish`).

Fields are the manifest line's own (voice, augmentation, accent, ...) plus two derived from the
built-in corpus's fields: `snr_db` (from `augmentation`'s noise=COLOR@NdB; no noise is +inf) and
`engine` (the synthesiser, the part of `voice` before ':'). A number on the right compares as a
number, anything else as text.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass

OPS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt}
_COND = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")
_INLINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=([A-Za-z0-9_\-.]+)$")
_NOISE = re.compile(r"noise=[a-z]+@(-?[0-9.]+)dB")


class SliceError(ValueError):
    """A slice that cannot be parsed; the message names the part."""


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: float | str

    def holds(self, fields: dict) -> bool:
        got = fields.get(self.field)
        if got is None:
            return False
        if isinstance(self.value, float):
            try:
                return OPS[self.op](float(got), self.value)
            except (TypeError, ValueError):
                return False
        return OPS[self.op](str(got), self.value)


def parse_slice(spec: object) -> tuple[Condition, ...]:
    if not isinstance(spec, str) or not spec.strip():
        raise SliceError("a slice is a string of conditions like \"snr_db <= 10 and engine == flite\"")
    out = []
    for part in spec.split(" and "):
        m = _COND.match(part)
        if not m:
            raise SliceError(f"{part.strip()!r} is not FIELD OP VALUE (OP one of {', '.join(OPS)})")
        raw = m.group(3)
        try:
            value: float | str = float(raw)
        except ValueError:
            value = raw
        out.append(Condition(m.group(1), m.group(2), value))
    return tuple(out)


def resolve_slice(name: str, declared: dict[str, str]) -> tuple[Condition, ...]:
    """The conditions of `wer@NAME`: a declared slice, or FIELD=VALUE inline."""
    if name in declared:
        return parse_slice(declared[name])
    m = _INLINE.match(name)
    if m:
        return (Condition(m.group(1), "==", m.group(2)),)
    raise SliceError(f"slice {name!r} is not declared under 'slices' and is not FIELD=VALUE")


def utterance_fields(fields: dict) -> dict:
    """A manifest line's fields plus the derived `snr_db` and `engine`."""
    out = dict(fields)
    aug = str(fields.get("augmentation", ""))
    if "snr_db" not in out and "augmentation" in fields:
        m = _NOISE.search(aug)
        out["snr_db"] = float(m.group(1)) if m else math.inf
    if "engine" not in out and isinstance(fields.get("voice"), str):
        out["engine"] = fields["voice"].split(":", 1)[0]
    return out


def select(utts: list, conditions: tuple[Condition, ...]) -> list:
    """The utterances (with `.fields`) for which every condition holds, in order."""
    out = []
    for u in utts:
        fields = utterance_fields(u.fields)
        if all(c.holds(fields) for c in conditions):
            out.append(u)
    return out
