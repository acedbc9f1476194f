"""Apply a policy: shared bookkeeping around the handlers, in the registry's order.

Order (shapes first, values last, see each method's `order`): structured prune -> low-rank ->
(sparsity-regularised fine-tuning) -> unstructured prune -> cluster -> quantize. Every method
sees the output of the ones before it, so any combination on any layer is well defined; e.g. a
low-rank layer is pruned, clustered and quantized factor by factor. Nothing here names a method:
what a handler returns (mask, values, factors, units) says what to do.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ._calibration import Calibration
from ._configs import ConfigError, MethodConfig
from ._layers import LayerInfo, LowRankConv1d, LowRankLinear, discover_layers, factor_modules, get_weight
from ._policy import Policy, PolicyError
from ._quant import round_small_tensors
from ._registry import METHODS, Factors, Mask, Replace, Units, Values, handler_for, ordered
from ._structured import find_block, shrink


@dataclass
class LayerState:
    """What was done to one layer; enough to rebuild its shapes and count its bytes."""

    kind: str
    rank: int | None = None
    bits: int | None = None
    quant_kind: str | None = None
    clusters: int | None = None
    sparsity: float | None = None
    kept: int | None = None  # units left by structured pruning (FFN neurons / conv channels)
    extra: dict = field(default_factory=dict)  # what other (e.g. user-registered) methods record


def _low_rank_module(layer: LayerInfo, rank: int, bias: bool) -> nn.Module:
    cls = LowRankLinear if layer.kind == "Linear" else LowRankConv1d
    return cls(layer.in_features, layer.out_features, rank, bias)


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def layer_tensors(model: nn.Module, layer: LayerInfo, state: LayerState | None) -> list[torch.Tensor]:
    """The stored weight tensors of a layer: one, or its factors (two after low-rank, three
    after Tucker-2)."""
    factors = factor_modules(model.get_submodule(layer.module_name))
    return [f.weight for f in factors] if factors else [get_weight(model, layer)]


@torch.no_grad()
def _apply_one(model: nn.Module, layer: LayerInfo, cfg: MethodConfig, state: LayerState,
               calibration: torch.Tensor | None = None) -> None:
    handler = handler_for(cfg)
    if handler.structural:
        block = find_block(model, layer)
        units: Units = handler.compute_block(block, cfg)
        shrink(block, units.keep)
        state.kept = units.keep.numel()
        return
    for tensor in layer_tensors(model, layer, state):
        view = handler.view(tensor, state)
        # calibration statistics describe the layer's input (a conv's: its patches): they fit a
        # tensor whose (out, in k k) view has that width
        # (not a low-rank layer's second factor, nor a clustered codebook's view)
        fits = calibration is not None and view.ndim >= 2 and view[0].numel() == calibration.shape[0]
        result = handler.compute(view, cfg, calibration=calibration) if fits else handler.compute(view, cfg)
        if isinstance(result, (Mask, Values)):
            if isinstance(result, Mask):
                tensor.mul_(result.keep.view_as(tensor).to(tensor.dtype))
            else:
                tensor.copy_(result.weight.view_as(tensor))
            for k, v in result.meta.items():
                if k in LayerState.__dataclass_fields__ and k != "extra":
                    setattr(state, k, v)
                else:
                    state.extra.setdefault(cfg.key, {})[k] = v
        elif isinstance(result, Replace):
            old = model.get_submodule(layer.module_name)
            new = handler.rebuild(old, result.record)
            for factor, w in zip(new.factors(), result.weights, strict=True):
                factor.weight.copy_(w.view_as(factor.weight))
            if getattr(old, "bias", None) is not None:
                new.factors()[-1].bias.copy_(old.bias)
            _set_module(model, layer.module_name, new.to(tensor.dtype))
            state.extra.setdefault(cfg.key, {}).update(result.record)
        elif isinstance(result, Factors):
            old = model.get_submodule(layer.module_name)
            bias = getattr(old, "bias", None)
            new = _low_rank_module(layer, result.first.shape[0], bias is not None)
            new.first.weight.copy_(result.first.reshape(new.first.weight.shape))
            new.second.weight.copy_(result.second.reshape(new.second.weight.shape))
            if bias is not None:
                new.second.bias.copy_(bias)
            _set_module(model, layer.module_name, new.to(tensor.dtype))
            state.rank = result.first.shape[0]


def _penalised_tensors(model: nn.Module, names: list[str], plans: dict, states: dict[str, LayerState], key: str,
                       ) -> list[tuple[nn.Module, str, MethodConfig]]:
    by_name = {l.name: l for l in discover_layers(model)}
    out = []
    for name in names:
        layer, cfg = by_name[name], plans[name][key]
        m = model.get_submodule(layer.module_name)
        factors = factor_modules(m)
        pairs = [(f, "weight") for f in factors] if factors else [(m, layer.param_name)]
        out += [(mod, pname, cfg) for mod, pname in pairs]
    return out


Regularize = Callable[[nn.Module, list[tuple[nn.Module, str, MethodConfig]]], None]


Gradients = Callable[[nn.Module], None]


def compress_model(model: nn.Module, policy: Policy, regularize: Regularize | None = None,
                   gradients: Gradients | None = None, calibration: Calibration | None = None,
                   ) -> tuple[nn.Module, dict[str, LayerState], list[str]]:
    """A compressed copy of `model` (weights baked in), its per-layer state, and skip notes.

    `regularize(model, [(module, param name, config), ...])` trains with the penalties of the
    layers that have a training method (sparsity_reg); it runs at that method's place in the
    order (after the shapes, before the values), and is required when the policy uses one.
    `gradients(model)` leaves dL/dw in every parameter's `.grad` (a few training batches); it is
    required when a method needs them (the taylor structured-pruning criterion).
    `calibration` (a `Calibration` of a few utterances) gives each layer's input statistics
    X X^T / n, computed at the method's place in the order (on the shapes the methods before it
    left), and the model's outputs; it is required when a method needs them (GPTQ rounding,
    depth pruning by KL).
    """
    model = copy.deepcopy(model).eval()
    model_state = _apply_model_methods(model, policy, calibration)  # before any rule: blocks may go
    layers = discover_layers(model)
    resolution = policy.resolve(layers, model)
    states = {name: LayerState(kind=next(l.kind for l in layers if l.name == name)) for name in resolution.plans}
    if model_state is not None:
        states[MODEL_STATE] = model_state
    training = [m.key for m in ordered() if m.training and any(m.key in p for p in resolution.plans.values())]
    if training and regularize is None:
        raise PolicyError(f"{policy.source}: {training[0]} trains the model, so it needs training data "
                          "(give --corpus and distillation settings)")
    graded = [(name, cfg) for name, plan in resolution.plans.items() for cfg in plan.values()
              if handler_for(cfg).needs_gradients(cfg)]
    calibrated = [(name, cfg) for name, plan in resolution.plans.items() for cfg in plan.values()
                  if handler_for(cfg).needs_calibration(cfg)]
    if calibrated and calibration is None:
        name, cfg = calibrated[0]
        raise PolicyError(f"{policy.source}: layer {name}: {handler_for(cfg).needs_calibration(cfg)} needs "
                          "calibration audio (give --corpus)")
    if graded:
        if gradients is None:
            name, cfg = graded[0]
            raise PolicyError(f"{policy.source}: layer {name}: {handler_for(cfg).needs_gradients(cfg)} needs "
                              "training data for its gradients (give --corpus)")
        with torch.enable_grad():
            gradients(model)
    for method in ordered():
        names = [name for name, plan in resolution.plans.items() if method.key in plan]
        if method.training:
            if names:
                regularize(model, _penalised_tensors(model, names, resolution.plans, states, method.key))
                model.eval()
            continue
        # Shapes change under structured pruning and low-rank: look layers up afresh.
        by_name = {l.name: l for l in discover_layers(model)}
        wanted = [by_name[n] for n in names if method.handler.needs_calibration(resolution.plans[n][method.key])]
        stats = calibration.hessians(model, wanted) if wanted else {}
        for name in names:
            _apply_one(model, by_name[name], resolution.plans[name][method.key], states[name], stats.get(name))
    if any(st.bits for st in states.values()):
        round_small_tensors(model)
    model.zero_grad(set_to_none=True)
    return model.eval(), states, resolution.skipped


MODEL_STATE = "model"  # the state entry of model-scope methods (depth pruning), beside the layers'


def _apply_model_methods(model: nn.Module, policy: Policy, calibration: Calibration | None) -> LayerState | None:
    """Carry out the policy's model-scope methods (registry order); their records, for loading."""
    if not policy.model_methods:
        return None
    state = LayerState(kind="model")
    planned = dict(policy.model_methods)
    for method in (m for m in ordered() if m.key in planned):
        cfg = planned[method.key]
        why = method.handler.needs_calibration(cfg)
        if why and calibration is None:
            raise PolicyError(f"{policy.source}: {why} needs calibration audio (give --corpus)")
        try:
            record = method.handler.plan_model(model, cfg, calibration)
        except ConfigError as e:
            raise PolicyError(f"{policy.source}: {e}") from None
        method.handler.apply_model(model, record)
        state.extra[method.key] = record
    return state


def rebuild_structure(model: nn.Module, states: dict[str, LayerState]) -> nn.Module:
    """Give a fresh base model the shapes of a compressed one, so its weights load exactly."""
    if MODEL_STATE in states:
        for key, record in states[MODEL_STATE].extra.items():
            METHODS[key].handler.apply_model(model, record)
    layers = {l.name: l for l in discover_layers(model)}
    for name, st in states.items():
        if st.kept is not None and name in layers:
            shrink(find_block(model, layers[name]), torch.arange(st.kept))
    layers = {l.name: l for l in discover_layers(model)}
    for name, st in states.items():
        for key, record in st.extra.items():  # methods that replaced the layer by a factored one
            if key not in METHODS or name not in layers:  # (a user method not loaded; the model-scope state)
                continue
            module_name = layers[name].module_name
            new = METHODS[key].handler.rebuild(model.get_submodule(module_name), record)
            if new is not None:
                _set_module(model, module_name, new)
        if st.rank is not None:
            layer = layers[name]
            bias = getattr(model.get_submodule(layer.module_name), "bias", None) is not None
            _set_module(model, layer.module_name, _low_rank_module(layer, st.rank, bias))
    return model


def states_to_dict(states: dict[str, LayerState]) -> dict:
    out = {k: asdict(v) for k, v in states.items()}
    for d in out.values():
        if not d["extra"]:
            del d["extra"]  # files stay as they were for the built-in methods
    return out


def states_from_dict(d: dict) -> dict[str, LayerState]:
    return {k: LayerState(**v) for k, v in d.items()}
