"""Search spaces (`spaces/*.yaml`): what a trial may choose, per layer group or per layer.

    version: 1
    groups:                      # each: pattern (glob) or name, per_layer, and choices
      - pattern: "encoder.*.ffn*.sequential.1"
        per_layer: true          # one parameter per matched layer; false: one for the group
        structured: [0.0, 0.25, 0.5]
        bits: [null, 8, 4]       # null: not quantized
        quant_kind: [linear, log]
        sparsity: [0.0, 0.5]
        rank_fraction: [null, 0.5]
        clusters: [null, 16]
    methods: [structured, lowrank, prune, cluster, quant]   # the ones enabled
    distill: {steps: 100, temperature: [1.0, 4.0], alpha: [0.2, 0.9], lr: 1.0e-4}
    slices: {noisy: "snr_db <= 10"}      # dev slices, for wer@SLICE (see objectives._slices)
    objectives: [wer, latency@host, memory]   # any of the objective registry: wer, cer, memory,
                                              # size, latency@PROFILE, wer@SLICE
    constraints: ["latency@rpi4 <= 40", "memory <= 2.0", "wer <= base + 0.01"]

Lists are categorical choices; `[low, high]` under distill is a float range. Units: wer as a
fraction, latency in ms (8 s input), memory and size in MB.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

from .._yaml import read_yaml
from ..compression import check_choice, choice_keys, configs_from_choices, neutral_choices
from ..errors import UserError
from ..objectives import SliceError, describe, lookup, parse_slice, resolve_slice


def _methods() -> tuple[str, ...]:
    """The methods a space can choose: every registered one with search choices."""
    return tuple(m for m in dict.fromkeys(choice_keys().values()))

# OBJECTIVE <= NUMBER | OBJECTIVE <= base + NUMBER | OBJECTIVE <= base * NUMBER
CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_]+(?:@[A-Za-z0-9_\-.=]+)?)\s*<=\s*(?:base\s*([+*])\s*)?([0-9.eE+-]+)\s*$")
CONSTRAINT_FORMS = "'OBJECTIVE <= NUMBER', 'OBJECTIVE <= base + NUMBER' or 'OBJECTIVE <= base * NUMBER'"


@dataclass(frozen=True)
class Group:
    selector: str  # "pattern" or "name"
    value: str
    per_layer: bool
    choices: dict[str, list]


@dataclass(frozen=True)
class Constraint:
    """`objective <= bound`, or `<= base + bound` (op "+"), or `<= base * bound` (op "*"): a
    relative limit, as the bench's "WER within 5% of the base" is `wer <= base * 1.05`."""

    objective: str
    bound: float
    op: str = ""  # "", "+" or "*": how the bound combines with the base's value

    def limit(self, base: dict[str, float]) -> float:
        if self.op == "+":
            return base[self.objective] + self.bound
        if self.op == "*":
            return base[self.objective] * self.bound
        return self.bound

    def __str__(self) -> str:
        return f"{self.objective} <= " + (f"base {self.op} {self.bound:g}" if self.op else f"{self.bound:g}")


@dataclass(frozen=True)
class Space:
    name: str
    groups: tuple[Group, ...]
    methods: tuple[str, ...]
    distill_steps: int
    temperature: tuple[float, float]
    alpha: tuple[float, float]
    lr: float
    objectives: tuple[str, ...]
    constraints: tuple[Constraint, ...]
    slices: tuple[tuple[str, str], ...] = ()  # (name, conditions) of dev slices, for wer@SLICE
    path: str = field(default="", compare=False)

    @property
    def profiles(self) -> list[str]:
        return [o.split("@", 1)[1] for o in self.objectives if o.startswith("latency@")]

    @property
    def slice_names(self) -> list[str]:
        return [o.split("@", 1)[1] for o in self.objectives if o.startswith("wer@")]


def _fail(path: Path, where: str, msg: str) -> UserError:
    return UserError(f"{path}: {where}: {msg}")


def _check_choice(path: Path, where: str, key: str, values: object) -> list:
    """Each choice is checked by the method's own config, so the space accepts only what a policy will."""
    if not isinstance(values, list) or not values:
        raise _fail(path, where, f"'{key}' must be a non-empty list of choices")
    for v in values:
        reason = check_choice(key, v)
        if reason:
            raise _fail(path, where, f"'{key}' choice {v!r} is out of range or of the wrong type ({reason})")
    return values


def _check_pairs(path: Path, where: str, choices: dict[str, list]) -> None:
    """Every pair of choices of different keys must make a plan the methods accept together
    (e.g. no more shared values than the grid has levels)."""
    from ..compression import LayerInfo, Policy, PolicyError

    keys = list(choices)
    layer = LayerInfo("layer", "Linear", "layer", "weight", (8, 8))
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            for va in choices[a]:
                for vb in choices[b]:
                    methods = configs_from_choices({**neutral_choices(), a: va, b: vb})
                    if not methods:
                        continue
                    try:
                        Policy.from_dict({"version": 1, "rules": [{"global": True, **methods}]}).resolve([layer])
                    except PolicyError as e:
                        reason = str(e).split(": layer layer: ", 1)[-1]
                        raise _fail(path, where, f"'{a}' choice {va!r} with '{b}' choice {vb!r}: {reason}") from None


def _range(path: Path, key: str, v: object, lo: float, hi: float) -> tuple[float, float]:
    if (not isinstance(v, list) or len(v) != 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                         for x in v) or not lo <= v[0] <= v[1] <= hi):
        raise _fail(path, "distill", f"'{key}' must be [low, high] with {lo} <= low <= high <= {hi}")
    return float(v[0]), float(v[1])


def parse_space(doc: object, path: Path) -> Space:
    if not isinstance(doc, dict):
        raise UserError(f"{path}: a search space is a YAML mapping")
    known = {"version", "name", "groups", "methods", "distill", "objectives", "constraints", "slices"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise _fail(path, "top level", f"unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    if doc.get("version") != 1:
        raise _fail(path, "version", f"must be 1, got {doc.get('version')!r}")
    known_methods = _methods()
    methods = doc.get("methods", list(known_methods))
    if not isinstance(methods, list) or not all(m in known_methods for m in methods):
        raise _fail(path, "methods", f"must be a list drawn from {', '.join(known_methods)}")
    choice_method = choice_keys()
    groups_doc = doc.get("groups")
    if not isinstance(groups_doc, list) or not groups_doc:
        raise _fail(path, "groups", "must be a non-empty list")
    groups = []
    for i, g in enumerate(groups_doc):
        where = f"groups[{i}]"
        if not isinstance(g, dict):
            raise _fail(path, where, "must be a mapping")
        unknown = sorted(set(g) - {"pattern", "name", "per_layer", *choice_method})
        if unknown:
            raise _fail(path, where, f"unknown key {unknown[0]!r}")
        sel = [k for k in ("pattern", "name") if k in g]
        if len(sel) != 1 or not isinstance(g[sel[0]], str):
            raise _fail(path, where, "needs exactly one of 'pattern' or 'name' (a string)")
        per_layer = g.get("per_layer", False)
        if not isinstance(per_layer, bool):
            raise _fail(path, where, "'per_layer' must be true or false")
        choices = {}
        for key in choice_method:
            if key in g:
                if choice_method[key] not in methods:
                    raise _fail(path, where, f"'{key}' needs method '{choice_method[key]}', which 'methods' disables")
                choices[key] = _check_choice(path, where, key, g[key])
        if not choices:
            raise _fail(path, where, "chooses nothing: give at least one of " + ", ".join(choice_method))
        _check_pairs(path, where, choices)
        groups.append(Group(sel[0], g[sel[0]], per_layer, choices))
    d = doc.get("distill", {})
    if not isinstance(d, dict) or set(d) - {"steps", "temperature", "alpha", "lr"}:
        raise _fail(path, "distill", "may only set steps, temperature, alpha and lr")
    steps = d.get("steps", 100)
    if not isinstance(steps, int) or isinstance(steps, bool) or not 0 <= steps <= 100_000:
        raise _fail(path, "distill", f"'steps' must be a whole number in [0, 100000], got {steps!r}")
    lr = d.get("lr", 1e-4)
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not 0 < lr < 1:
        raise _fail(path, "distill", f"'lr' must be in (0, 1), got {lr!r}")
    slices = doc.get("slices", {}) or {}
    if not isinstance(slices, dict) or not all(isinstance(k, str) for k in slices):
        raise _fail(path, "slices", "must be a mapping of slice name to conditions")
    for name, spec in slices.items():
        try:
            parse_slice(spec)
        except SliceError as e:
            raise _fail(path, f"slices.{name}", str(e)) from None
    objectives = doc.get("objectives", ["wer", "latency@host", "memory"])
    if not isinstance(objectives, list) or not objectives or "wer" not in objectives:
        raise _fail(path, "objectives", "must be a list that includes 'wer'")
    for o in objectives:
        try:
            lookup(o) if isinstance(o, str) else lookup("")
        except KeyError:
            raise _fail(path, "objectives", f"{o!r} is not one of {describe()}") from None
        if o.startswith("wer@"):
            try:
                resolve_slice(o.split("@", 1)[1], slices)
            except SliceError as e:
                raise _fail(path, "objectives", f"{o!r}: {e}") from None
    if len(set(objectives)) != len(objectives):
        raise _fail(path, "objectives", "names an objective twice")
    constraints = []
    for c in doc.get("constraints", []) or []:
        m = CONSTRAINT_RE.match(c) if isinstance(c, str) else None
        if not m:
            raise _fail(path, "constraints", f"{c!r} is not {CONSTRAINT_FORMS}")
        if m.group(1) not in objectives:
            raise _fail(path, "constraints", f"{c!r} constrains {m.group(1)!r}, which is not an objective")
        try:
            bound = float(m.group(3))
        except ValueError:
            raise _fail(path, "constraints", f"{c!r}: {m.group(3)!r} is not a number") from None
        if m.group(2) == "*" and not bound > 0:
            raise _fail(path, "constraints", f"{c!r}: a factor of the base must be above 0")
        constraints.append(Constraint(m.group(1), bound, m.group(2) or ""))
    return Space(name=str(doc.get("name", path.stem)), groups=tuple(groups), methods=tuple(methods),
                 distill_steps=steps, temperature=_range(path, "temperature", d.get("temperature", [2.0, 2.0]), 0.5, 20),
                 alpha=_range(path, "alpha", d.get("alpha", [0.5, 0.5]), 0.0, 1.0), lr=float(lr),
                 objectives=tuple(objectives), constraints=tuple(constraints),
                 slices=tuple((str(k), str(v)) for k, v in slices.items()), path=str(path))


def load_space(path: Path) -> Space:
    return parse_space(read_yaml(path, "search space"), Path(path))


def matched_layers(group: Group, layer_names: list[str]) -> list[str]:
    if group.selector == "name":
        return [n for n in layer_names if n == group.value]
    return [n for n in layer_names if fnmatch.fnmatchcase(n, group.value)]


def check_against_model(space: Space, layer_names: list[str]) -> None:
    for i, g in enumerate(space.groups):
        if not matched_layers(g, layer_names):
            raise _fail(Path(space.path), f"groups[{i}]", f"{g.selector} {g.value!r} matches no layer of this model "
                        "(see `asrcompress layers`)")
