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
    objectives: [wer, latency@host, memory]
    constraints: ["latency@rpi4 <= 40", "memory <= 2.0", "wer <= base + 0.01"]

Lists are categorical choices; `[low, high]` under distill is a float range. Units: wer as a
fraction, latency in ms (8 s input), memory in MB.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

from .._yaml import read_yaml
from ..compression import QUANT_BITS
from ..errors import UserError

CHOICE_KEYS = {  # space key -> (method, allowed values check)
    "structured": "structured", "bits": "quant", "quant_kind": "quant", "sparsity": "prune",
    "rank_fraction": "lowrank", "clusters": "cluster",
}
METHODS = ("structured", "lowrank", "prune", "cluster", "quant")
OBJECTIVE_RE = re.compile(r"^(wer|memory|latency@[A-Za-z0-9_\-]+)$")
CONSTRAINT_RE = re.compile(r"^\s*(wer|memory|latency@[A-Za-z0-9_\-]+)\s*<=\s*(base\s*\+\s*)?([0-9.eE+-]+)\s*$")


@dataclass(frozen=True)
class Group:
    selector: str  # "pattern" or "name"
    value: str
    per_layer: bool
    choices: dict[str, list]


@dataclass(frozen=True)
class Constraint:
    objective: str
    bound: float
    relative_to_base: bool

    def limit(self, base: dict[str, float]) -> float:
        return self.bound + (base[self.objective] if self.relative_to_base else 0.0)


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
    path: str = field(default="", compare=False)

    @property
    def profiles(self) -> list[str]:
        return [o.split("@", 1)[1] for o in self.objectives if o.startswith("latency@")]


def _fail(path: Path, where: str, msg: str) -> UserError:
    return UserError(f"{path}: {where}: {msg}")


def _check_choice(path: Path, where: str, key: str, values: object) -> list:
    if not isinstance(values, list) or not values:
        raise _fail(path, where, f"'{key}' must be a non-empty list of choices")
    for v in values:
        ok = {
            "structured": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= 0.9,
            "sparsity": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= 0.99,
            "bits": lambda x: x is None or (isinstance(x, int) and not isinstance(x, bool) and x in QUANT_BITS),
            "quant_kind": lambda x: x in ("linear", "log"),
            "rank_fraction": lambda x: x is None or (isinstance(x, (int, float)) and not isinstance(x, bool)
                                                     and 0 < x <= 1),
            "clusters": lambda x: x is None or (isinstance(x, int) and not isinstance(x, bool) and 2 <= x <= 65536),
        }[key](v)
        if not ok:
            raise _fail(path, where, f"'{key}' choice {v!r} is out of range or of the wrong type")
    return values


def _range(path: Path, key: str, v: object, lo: float, hi: float) -> tuple[float, float]:
    if (not isinstance(v, list) or len(v) != 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                         for x in v) or not lo <= v[0] <= v[1] <= hi):
        raise _fail(path, "distill", f"'{key}' must be [low, high] with {lo} <= low <= high <= {hi}")
    return float(v[0]), float(v[1])


def parse_space(doc: object, path: Path) -> Space:
    if not isinstance(doc, dict):
        raise UserError(f"{path}: a search space is a YAML mapping")
    known = {"version", "name", "groups", "methods", "distill", "objectives", "constraints"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise _fail(path, "top level", f"unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    if doc.get("version") != 1:
        raise _fail(path, "version", f"must be 1, got {doc.get('version')!r}")
    methods = doc.get("methods", list(METHODS))
    if not isinstance(methods, list) or not all(m in METHODS for m in methods):
        raise _fail(path, "methods", f"must be a list drawn from {', '.join(METHODS)}")
    groups_doc = doc.get("groups")
    if not isinstance(groups_doc, list) or not groups_doc:
        raise _fail(path, "groups", "must be a non-empty list")
    groups = []
    for i, g in enumerate(groups_doc):
        where = f"groups[{i}]"
        if not isinstance(g, dict):
            raise _fail(path, where, "must be a mapping")
        unknown = sorted(set(g) - {"pattern", "name", "per_layer", *CHOICE_KEYS})
        if unknown:
            raise _fail(path, where, f"unknown key {unknown[0]!r}")
        sel = [k for k in ("pattern", "name") if k in g]
        if len(sel) != 1 or not isinstance(g[sel[0]], str):
            raise _fail(path, where, "needs exactly one of 'pattern' or 'name' (a string)")
        per_layer = g.get("per_layer", False)
        if not isinstance(per_layer, bool):
            raise _fail(path, where, "'per_layer' must be true or false")
        choices = {}
        for key in CHOICE_KEYS:
            if key in g:
                if CHOICE_KEYS[key] not in methods:
                    raise _fail(path, where, f"'{key}' needs method '{CHOICE_KEYS[key]}', which 'methods' disables")
                choices[key] = _check_choice(path, where, key, g[key])
        if not choices:
            raise _fail(path, where, "chooses nothing: give at least one of " + ", ".join(CHOICE_KEYS))
        for b in [x for x in choices.get("bits", []) if x is not None]:
            for k in [x for x in choices.get("clusters", []) if x is not None]:
                if k > 2**b:  # the policy refuses more shared values than the grid has levels
                    raise _fail(path, where, f"'clusters' choice {k} exceeds the {2 ** b} levels of 'bits' choice {b}")
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
    objectives = doc.get("objectives", ["wer", "latency@host", "memory"])
    if not isinstance(objectives, list) or not objectives or "wer" not in objectives:
        raise _fail(path, "objectives", "must be a list that includes 'wer'")
    for o in objectives:
        if not isinstance(o, str) or not OBJECTIVE_RE.match(o):
            raise _fail(path, "objectives", f"{o!r} is not wer, memory or latency@PROFILE")
    constraints = []
    for c in doc.get("constraints", []) or []:
        m = CONSTRAINT_RE.match(c) if isinstance(c, str) else None
        if not m:
            raise _fail(path, "constraints", f"{c!r} is not 'OBJECTIVE <= NUMBER' or 'OBJECTIVE <= base + NUMBER'")
        if m.group(1) not in objectives:
            raise _fail(path, "constraints", f"{c!r} constrains {m.group(1)!r}, which is not an objective")
        constraints.append(Constraint(m.group(1), float(m.group(3)), bool(m.group(2))))
    return Space(name=str(doc.get("name", path.stem)), groups=tuple(groups), methods=tuple(methods),
                 distill_steps=steps, temperature=_range(path, "temperature", d.get("temperature", [2.0, 2.0]), 0.5, 20),
                 alpha=_range(path, "alpha", d.get("alpha", [0.5, 0.5]), 0.0, 1.0), lr=float(lr),
                 objectives=tuple(objectives), constraints=tuple(constraints), path=str(path))


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
