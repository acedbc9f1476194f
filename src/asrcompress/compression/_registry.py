"""The method registry: one `Method` per compression method, registered by its own module.

A method module declares everything the rest of the system needs from it (torchao's
config + handler, Olive's searchable values):
    - its frozen config class (validates its own values; the policy key is `config.key`),
    - its handler, which computes only its result for one weight (a mask, new values on a grid,
      low-rank factors, or the units to keep); `_apply` does the bookkeeping,
    - its place in the application order,
    - its search choices: which space keys set which config field, and the value that means
      "off". A space's choices are checked by building the config, so a space can never accept
      what the method refuses,
    - how distillation keeps its form (`Handler.keep`), and cross-method checks on one layer's
      plan (`Handler.check_plan`),
    - its uniform hand policies for the benchmark.
`_apply`, `_distill`, the policy parser, the search space and sampler, and the bench loop over
`METHODS` and name no method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ._configs import ConfigError, MethodConfig
from ._layers import LayerInfo


@dataclass
class Mask:
    keep: torch.Tensor  # bool, same shape as the weight
    meta: dict = field(default_factory=dict)  # recorded in the layer's state


@dataclass
class Values:
    weight: torch.Tensor  # replacement values, same shape
    meta: dict = field(default_factory=dict)  # bits, kind, clusters, ... for size accounting


@dataclass
class Factors:
    first: torch.Tensor  # (r, in)
    second: torch.Tensor  # (out, r)


@dataclass
class Replace:
    """The layer becomes the handler's `rebuild(old module, record)` (a `Factored` module, e.g.
    Tucker-2's three convs), whose factors take `weights` in order; the old layer's bias goes to
    the last factor. `record` is kept in the layer's state, so a saved model rebuilds its shape."""

    weights: list[torch.Tensor]
    record: dict


@dataclass
class Units:
    keep: torch.Tensor  # sorted indices of the block's units (neurons, heads, channels) to keep


Projection = Callable[[torch.Tensor], torch.Tensor]


class Handler:
    """Base handler. `compute` works on one weight tensor; a handler with `structural = True`
    gets the whole block instead (`compute_block`) and returns the units to keep."""

    structural = False
    replaces_layer = False  # its result is a new module in the layer's place (one such method per layer)

    def not_applicable(self, layer: LayerInfo, model: torch.nn.Module) -> str | None:
        """Why a layer cannot take the method (None if it can)."""
        return None

    def check(self, layer: LayerInfo, cfg: MethodConfig) -> None:
        """Raise ConfigError for values that depend on the layer (e.g. rank > min(in, out))."""

    def check_plan(self, plan: dict[str, MethodConfig]) -> str | None:
        """Why this method's config cannot go with the others planned for one layer (None: it can)."""
        return None

    def needs_gradients(self, cfg: MethodConfig) -> str | None:
        """The setting that makes `compute` read dL/dw (the caller must run a few training
        batches first), e.g. "structured.criterion taylor"; None when it does not."""
        return None

    def needs_calibration(self, cfg: MethodConfig) -> str | None:
        """The setting that makes `compute` read calibration statistics (each layer's input
        X X^T / n, passed as `calibration=`), e.g. "quant.rounding gptq"; None when it does not."""
        return None

    def view(self, tensor: torch.Tensor, state: Any) -> torch.Tensor:
        """The tensor `compute` sees; e.g. a clustered codebook is quantized as one row."""
        return tensor

    def compute(self, weight: torch.Tensor, cfg: MethodConfig) -> Mask | Values | Factors | Replace:
        raise NotImplementedError

    def rebuild(self, module: torch.nn.Module, record: dict) -> torch.nn.Module | None:
        """For a method whose `compute` returns `Replace`: the empty factored module that takes
        the place of `module`, from the record it wrote (called again when a model is loaded).
        None: the method replaces no layer."""
        return None

    def compute_block(self, block: Any, cfg: MethodConfig) -> Units:
        raise NotImplementedError

    def plan_model(self, model: torch.nn.Module, cfg: MethodConfig, calibration: Any) -> dict:
        """A model-scope method: what to do to the whole model, as a record (kept in
        compression.json) that `apply_model` carries out, now and when the model is loaded."""
        raise NotImplementedError

    def apply_model(self, model: torch.nn.Module, record: dict) -> None:
        raise NotImplementedError

    def storage(self, state: Any) -> dict | None:
        """How this method changes the way a layer's tensors are stored (`_size` merges these in
        method order): "bits" per stored value, "codebook" entries, "scale_bytes" per scale and
        "scales" ("row": one per output row, "one": one per tensor). None: no change."""
        return None

    def lowering(self, state: Any) -> dict | None:
        """What the ONNX export can do with a layer this method touched: {"grid_bits": b} when
        its stored tensors lie on a symmetric per-row linear grid of b bits (the exporter swaps
        in int8 / 4-bit kernels); {"no_kernel": why} for values no kernel runs; {"note": why a
        dense layer is not run faster}. None: nothing to say."""
        return None

    def keep(self, weight: torch.Tensor, state: Any) -> Projection | None:
        """During distillation: the projection that puts a trained weight back in this method's
        form (mask, codebook, grid), from the compressed `weight`; None when there is nothing to keep."""
        return None


@dataclass(frozen=True)
class Choice:
    """A search-space key: it sets config field `field`. For a trigger choice `neutral` means
    the method is off; a modifier (trigger=False) only refines a method a trigger turned on."""

    field: str
    neutral: Any = None
    trigger: bool = True


@dataclass(frozen=True)
class Method:
    key: str
    config: type[MethodConfig]
    handler: Handler
    order: int  # application order: shapes first (structured, low-rank), then values
    choices: dict[str, Choice] = field(default_factory=dict)
    example: dict = field(default_factory=dict)  # a valid config, to check a modifier choice against
    training: bool = False  # applied by a training step (`regularize`), not by `compute`
    uniform: dict[str, list[dict]] = field(default_factory=dict)  # bench: label -> policy rules
    scope: str = "layer"  # "model": a policy's top-level field (`plan_model`), not a per-layer rule


METHODS: dict[str, Method] = {}
HANDLERS: dict[type[MethodConfig], Handler] = {}


def register(config: type[MethodConfig], order: int, choices: dict[str, Choice] | None = None,
             example: dict | None = None, training: bool = False, uniform: dict[str, list[dict]] | None = None,
             scope: str = "layer"):
    """Class decorator for a handler: registers its method under `config.key`."""
    if scope not in ("layer", "model"):
        raise ValueError(f"method {config.key}: scope {scope!r} is not one of layer, model")

    def deco(handler_cls: type[Handler]) -> type[Handler]:
        handler = handler_cls()
        method = Method(config.key, config, handler, order, dict(choices or {}), dict(example or {}), training,
                        dict(uniform or {}), scope)
        clash = [k for m in METHODS.values() if m.key != method.key for k in m.choices if k in method.choices]
        if clash:
            raise ValueError(f"method {method.key}: search choice {clash[0]!r} is already another method's")
        METHODS[method.key] = method
        HANDLERS[config] = handler
        return handler_cls

    return deco


def unregister(key: str) -> None:
    """Remove a method (tests register toy methods and take them out again)."""
    method = METHODS.pop(key)
    HANDLERS.pop(method.config, None)


def ordered() -> list[Method]:
    return sorted(METHODS.values(), key=lambda m: m.order)


def handler_for(cfg: MethodConfig) -> Handler:
    return HANDLERS[type(cfg)]


def choice_keys() -> dict[str, str]:
    """Space key -> method key, over every registered method."""
    return {k: m.key for m in ordered() for k in m.choices}


def check_choice(key: str, value: object) -> str | None:
    """Why `value` is not a valid choice for space key `key` (None if it is): the method's own
    config decides, so the space and the policy can never disagree."""
    method = METHODS[choice_keys()[key]]
    choice = method.choices[key]
    if isinstance(value, bool):
        return f"{value!r} is a boolean"
    if choice.trigger and value == choice.neutral:
        return None
    try:
        method.config(**{**method.example, choice.field: value})
    except (ConfigError, TypeError) as e:
        return str(e)
    return None


def configs_from_choices(values: dict[str, Any]) -> dict[str, dict]:
    """Policy method fields from one layer's chosen values: {method key: {field: value}}, in
    application order; a method is on when one of its trigger choices is not neutral."""
    out: dict[str, dict] = {}
    for m in ordered():
        triggers = {k: c for k, c in m.choices.items() if c.trigger}
        on = {k: values[k] for k in triggers if k in values and values[k] != triggers[k].neutral}
        if not on:
            continue
        fields = {triggers[k].field: v for k, v in on.items()}
        for k, c in m.choices.items():
            if not c.trigger:
                fields[c.field] = values.get(k, c.neutral)
        out[m.key] = fields
    return out


def neutral_choices() -> dict[str, Any]:
    return {k: c.neutral for m in ordered() for k, c in m.choices.items()}


def lowering(state: Any) -> dict:
    """The methods' lowerings of one layer, merged in order ({} for an untouched layer)."""
    out: dict = {}
    for m in ordered():
        low = m.handler.lowering(state)
        if low:
            if "note" in low and out.get("note") not in (None, low["note"]):
                low = {**low, "note": f"{out['note']}; {low['note']}"}
            out.update(low)
    return out


def uniform_policies() -> dict[str, list[dict]]:
    """The bench's uniform hand policies, over every registered method."""
    return {label: rules for m in ordered() for label, rules in m.uniform.items()}
