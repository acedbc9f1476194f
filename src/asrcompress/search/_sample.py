"""Turn a trial's choices into a per-layer policy, and the baseline policies to seed with."""

from __future__ import annotations

from typing import Any

from ..compression import configs_from_choices, neutral_choices
from ._space import Space, matched_layers

BASELINES = {  # name -> the choice that defines it; everything else neutral
    "uniform_int8": {"bits": 8},
    "uniform_int4": {"bits": 4},
    "sparse50": {"sparsity": 0.5},
}


def parameters(space: Space, layer_names: list[str]) -> list[tuple[str, str, list, list[str]]]:
    """(parameter name, choice key, choices, layers it applies to), in a fixed order."""
    out = []
    for i, g in enumerate(space.groups):
        layers = matched_layers(g, layer_names)
        units = [[l] for l in layers] if g.per_layer else [layers]
        for unit in units:
            prefix = f"g{i}.{unit[0]}" if g.per_layer else f"g{i}"
            for key, choices in g.choices.items():
                out.append((f"{prefix}.{key}", key, choices, unit))
    return out


def policy_from_params(space: Space, layer_names: list[str], params: dict[str, Any]) -> dict:
    """A policy document (rules by exact layer pattern) from the trial's parameter values."""
    per_layer: dict[str, dict[str, Any]] = {}
    for name, key, _, layers in parameters(space, layer_names):
        for layer in layers:
            per_layer.setdefault(layer, {})[key] = params[name]
    rules = []
    for layer in layer_names:  # model order keeps the YAML readable
        methods = configs_from_choices(per_layer.get(layer, {}))
        if methods:
            rules.append({"pattern": layer, **methods})  # a pattern rule skips layers a method cannot take
    kd = {"steps": space.distill_steps, "temperature": params.get("kd.temperature", space.temperature[0]),
          "alpha": params.get("kd.alpha", space.alpha[0]), "lr": space.lr}
    return {"version": 1, "rules": rules, "distill": kd}


def suggest(trial, space: Space, layer_names: list[str]) -> dict[str, Any]:
    params = {name: trial.suggest_categorical(name, choices) for name, _, choices, _ in
              parameters(space, layer_names)}
    for key, (lo, hi) in (("temperature", space.temperature), ("alpha", space.alpha)):
        if hi > lo:
            params[f"kd.{key}"] = trial.suggest_float(f"kd.{key}", lo, hi)
    return params


def baseline_params(space: Space, layer_names: list[str]) -> dict[str, dict[str, Any]]:
    """Parameter sets for the baseline policies the space can express."""
    out = {}
    neutral = neutral_choices()
    for name, want in BASELINES.items():
        params, hit = {}, False
        for pname, key, choices, _ in parameters(space, layer_names):
            value = want.get(key, neutral.get(key))
            if value not in choices:
                value = neutral[key] if neutral[key] in choices else choices[0]
            else:
                hit = hit or key in want
            params[pname] = value
        for key, (lo, hi) in (("temperature", space.temperature), ("alpha", space.alpha)):
            if hi > lo:
                params[f"kd.{key}"] = (lo + hi) / 2
        if hit:
            out[name] = params
    return out
