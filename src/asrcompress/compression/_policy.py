"""Per-layer compression policies: rules matched on layer names and types.

Priority when several rules match a layer (as torch's QConfigMapping):
    global < module type < name pattern < exact name; among equals, the later rule wins.
A method set to null in a higher-priority rule removes it for the layers that rule matches.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from ..errors import UserError
from ._configs import ConfigError, DistillConfig, MethodConfig
from ._layers import KINDS, LayerInfo
from ._registry import HANDLERS, METHODS, handler_for, ordered

POLICY_VERSION = 1
SELECTORS = ("global", "type", "pattern", "name")  # in priority order


class PolicyError(UserError):
    """A policy that cannot be applied; the message names the rule and field."""


@dataclass(frozen=True)
class Rule:
    selector: str
    value: str | None
    methods: tuple[tuple[str, MethodConfig | None], ...]

    @property
    def priority(self) -> int:
        return SELECTORS.index(self.selector)

    def describe(self, index: int) -> str:
        target = "global" if self.selector == "global" else f"{self.selector} {self.value!r}"
        return f"rule {index} ({target})"

    def matches(self, layer: LayerInfo) -> bool:
        if self.selector == "global":
            return True
        if self.selector == "type":
            return layer.kind == self.value
        if self.selector == "name":
            return layer.name == self.value
        if self.value.startswith("re:"):
            return re.fullmatch(self.value[3:], layer.name) is not None
        return fnmatch.fnmatchcase(layer.name, self.value)


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    distill: DistillConfig | None = None
    version: int = POLICY_VERSION
    source: str = field(default="policy", compare=False)  # named in resolution errors
    model_methods: tuple[tuple[str, MethodConfig], ...] = ()  # top-level fields of model-scope methods

    # ---- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict:
        rules = []
        for r in self.rules:
            d: dict = {r.selector: True if r.selector == "global" else r.value}
            for key, cfg in r.methods:
                d[key] = None if cfg is None else _cfg_to_dict(cfg)
            rules.append(d)
        out: dict = {"version": self.version}
        for key, cfg in self.model_methods:
            out[key] = _cfg_to_dict(cfg)
        out["rules"] = rules
        if self.distill is not None:
            out["distill"] = _cfg_to_dict(self.distill)
        return out

    @classmethod
    def from_dict(cls, d: object, source: str = "policy", allow_empty: bool = False) -> "Policy":
        """`allow_empty`: an empty rule list is the uncompressed model (a search may draw it);
        a user's policy file must name something to do."""
        if not isinstance(d, dict):
            raise PolicyError(f"{source}: must be a mapping with 'version' and 'rules'")
        model_keys = [m.key for m in ordered() if m.scope == "model"]
        unknown = set(d) - {"version", "rules", "distill", *model_keys}
        if unknown:
            raise PolicyError(f"{source}: unknown top-level field(s) {sorted(unknown)}")
        if d.get("version") != POLICY_VERSION:
            raise PolicyError(f"{source}: field 'version' must be {POLICY_VERSION} (got {d.get('version')!r})")
        model_methods = tuple((k, _parse_cfg(METHODS[k].config, d[k], f"{source}: {k}"))
                              for k in model_keys if d.get(k) is not None)
        raw_rules = d.get("rules", [] if model_methods else None)
        if not isinstance(raw_rules, list) or (not raw_rules and not (allow_empty or model_methods)):
            raise PolicyError(f"{source}: field 'rules' must be a non-empty list")
        rules = tuple(_parse_rule(r, i, source) for i, r in enumerate(raw_rules))
        distill = None
        if d.get("distill") is not None:
            distill = _parse_cfg(DistillConfig, d["distill"], f"{source}: distill")
        return cls(rules, distill, source=source, model_methods=model_methods)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def load(cls, path: Path) -> "Policy":
        path = Path(path)
        if not path.is_file():
            raise PolicyError(f"{path}: policy file not found")
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (yaml.YAMLError, json.JSONDecodeError) as e:
            raise PolicyError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} "
                              f"({str(e).splitlines()[0]})") from None
        return cls.from_dict(data, str(path))

    # ---- resolution ----------------------------------------------------------------
    def resolve(self, layers: list[LayerInfo], model: object | None = None) -> "Resolution":
        """Per-layer method configs, checked against each layer (and, given the model, against
        what each layer is: `Handler.not_applicable`)."""
        used = [False] * len(self.rules)
        plans: dict[str, dict[str, MethodConfig]] = {}
        skipped: list[str] = []
        order = sorted(range(len(self.rules)), key=lambda i: (self.rules[i].priority, i))
        for layer in layers:
            plan: dict[str, MethodConfig] = {}
            source: dict[str, int] = {}
            for i in order:
                rule = self.rules[i]
                if not rule.matches(layer):
                    continue
                used[i] = True
                for key, cfg in rule.methods:
                    if cfg is None:
                        plan.pop(key, None)
                    else:
                        plan[key], source[key] = cfg, i
            for key in list(plan):
                cfg, rule_i = plan[key], source[key]
                handler = HANDLERS[type(cfg)]
                reason = handler.not_applicable(layer, model) if model is not None else None
                if reason:
                    if self.rules[rule_i].selector == "name":
                        raise PolicyError(f"{self.source}: {self.rules[rule_i].describe(rule_i)}: {key} does not apply to "
                                          f"layer {layer.name}: {reason}")
                    skipped.append(f"{key} on {layer.name}: {reason}")
                    del plan[key]
                    continue
                try:
                    handler.check(layer, cfg)
                except ConfigError as e:
                    raise PolicyError(f"{self.source}: {self.rules[rule_i].describe(rule_i)}: {e}") from None
            _check_combination(layer, plan, self.source)
            if plan:
                plans[layer.name] = plan
        for i, hit in enumerate(used):
            if not hit:
                r = self.rules[i]
                raise PolicyError(f"{self.source}: {r.describe(i)}: field '{r.selector}' matches no layer of this model "
                                  f"(see `asrcompress layers`)")
        return Resolution(plans, skipped)


@dataclass
class Resolution:
    plans: dict[str, dict[str, MethodConfig]]
    skipped: list[str] = field(default_factory=list)


def _check_combination(layer: LayerInfo, plan: dict[str, MethodConfig], source: str) -> None:
    replacing = [key for key, cfg in plan.items() if handler_for(cfg).replaces_layer]
    if len(replacing) > 1:
        raise PolicyError(f"{source}: layer {layer.name}: {' and '.join(replacing)} each replace the layer "
                          "with their own factors; choose one")
    for cfg in plan.values():
        reason = handler_for(cfg).check_plan(plan)
        if reason:
            raise PolicyError(f"{source}: layer {layer.name}: {reason}")


VERSION_FIELD = "_version"  # a written config carries its config's version (its key is its type)


def _cfg_to_dict(cfg: MethodConfig) -> dict:
    plain = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731  (YAML and JSON lists)
    return {**{f.name: plain(getattr(cfg, f.name)) for f in fields(cfg)}, VERSION_FIELD: cfg.VERSION}


def _parse_cfg(cls: type[MethodConfig], raw: object, where: str) -> MethodConfig:
    """A method config from its fields. A hand-written one may leave out `_version` (the current
    one); a written one must be of the version this asrcompress knows, so a file from a release
    whose method meant something else is refused rather than misread."""
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: must be a mapping of fields (got {type(raw).__name__})")
    raw = dict(raw)
    version = raw.pop(VERSION_FIELD, cls.VERSION)
    if isinstance(version, bool) or version != cls.VERSION:
        raise PolicyError(f"{where}: field '{VERSION_FIELD}' is {version!r}, but this asrcompress reads version "
                          f"{cls.VERSION} of {cls.key or 'this'} config; re-create the policy with this version")
    known = {f.name for f in fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise PolicyError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(known)}")
    try:
        return cls(**raw)
    except ConfigError as e:
        raise PolicyError(f"{where}: {e}") from None
    except TypeError as e:
        raise PolicyError(f"{where}: {e}") from None


def _parse_rule(raw: object, index: int, source: str) -> Rule:
    where = f"{source}: rule {index}"
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: must be a mapping")
    sel = [s for s in SELECTORS if s in raw]
    if len(sel) != 1:
        raise PolicyError(f"{where}: needs exactly one of {', '.join(SELECTORS)} (got {sel or 'none'})")
    selector = sel[0]
    value = raw[selector]
    if selector == "global":
        if value is not True:
            raise PolicyError(f"{where}: field 'global' must be true")
        value = None
    elif not isinstance(value, str) or not value:
        raise PolicyError(f"{where}: field '{selector}' must be a non-empty string")
    elif selector == "type" and value not in KINDS:
        raise PolicyError(f"{where}: field 'type' must be one of {', '.join(KINDS)} (got {value!r})")
    elif selector == "pattern" and value.startswith("re:"):
        try:
            re.compile(value[3:])
        except re.error as e:
            raise PolicyError(f"{where}: field 'pattern' is not a valid regex ({e})") from None
    methods = []
    for key, cfg_raw in raw.items():
        if key == selector:
            continue
        if key not in METHODS or METHODS[key].scope != "layer":
            where_it_goes = " (a top-level field of the policy)" if key in METHODS else ""
            raise PolicyError(f"{where}: unknown field {key!r}{where_it_goes}; methods are "
                              f"{', '.join(m.key for m in ordered() if m.scope == 'layer')}")
        cls = METHODS[key].config
        methods.append((key, None if cfg_raw is None else _parse_cfg(cls, cfg_raw, f"{where}, {key}")))
    if not methods:
        raise PolicyError(f"{where}: names no method ({', '.join(m.key for m in ordered())})")
    return Rule(selector, value, tuple(methods))
