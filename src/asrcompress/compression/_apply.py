"""Apply a policy: shared bookkeeping around the handlers, in one fixed order.

Order (shapes first, values last): structured prune -> low-rank -> (sparsity-regularised
fine-tuning) -> unstructured prune -> cluster -> quantize. Every method sees the output of the ones before it, so any
combination on any layer is well defined; e.g. a low-rank layer is pruned, clustered and
quantized factor by factor.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ._configs import LAYER_METHODS, VALUE_METHODS, MethodConfig, SparsityRegConfig
from ._layers import LayerInfo, LowRankConv1d, LowRankLinear, discover_layers, get_weight
from ._policy import Policy, PolicyError
from ._quant import round_small_tensors
from ._registry import Factors, Mask, Values, handler_for
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


def _low_rank_module(layer: LayerInfo, rank: int, bias: bool) -> nn.Module:
    cls = LowRankLinear if layer.kind == "Linear" else LowRankConv1d
    return cls(layer.in_features, layer.out_features, rank, bias)


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def layer_tensors(model: nn.Module, layer: LayerInfo, state: LayerState | None) -> list[torch.Tensor]:
    """The stored weight tensors of a layer: one, or the two factors after low-rank."""
    if state is not None and state.rank is not None:
        m = model.get_submodule(layer.module_name)
        return [m.first.weight, m.second.weight]
    return [get_weight(model, layer)]


@torch.no_grad()
def _apply_one(model: nn.Module, layer: LayerInfo, cfg: MethodConfig, state: LayerState) -> None:
    handler = handler_for(cfg)
    if cfg.key == "structured":
        block = find_block(dict(model.named_modules()), layer)
        keep = handler.keep_units(block, cfg)
        shrink(block, keep)
        state.kept = keep.numel()
        return
    # A clustered layer's codebook is quantized as one tensor (one scale), so the k shared
    # values stay k after quantization.
    shared_grid = cfg.key == "quant" and state.clusters is not None
    for tensor in layer_tensors(model, layer, state):
        result = handler.compute(tensor.reshape(1, -1) if shared_grid else tensor, cfg)
        if isinstance(result, Mask):
            tensor.mul_(result.keep.to(tensor.dtype))
        elif isinstance(result, Values):
            tensor.copy_(result.weight.view_as(tensor))
            for k, v in result.meta.items():
                setattr(state, k, v)
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
    if cfg.key == "prune":
        state.sparsity = cfg.sparsity


def _penalised_tensors(model: nn.Module, names: list[str], plans: dict, states: dict[str, LayerState],
                       ) -> list[tuple[nn.Module, str, SparsityRegConfig]]:
    by_name = {l.name: l for l in discover_layers(model)}
    out = []
    for name in names:
        layer, cfg = by_name[name], plans[name]["sparsity_reg"]
        m = model.get_submodule(layer.module_name)
        pairs = [(m.first, "weight"), (m.second, "weight")] if states[name].rank else [(m, layer.param_name)]
        out += [(mod, pname, cfg) for mod, pname in pairs]
    return out


Regularize = Callable[[nn.Module, list[tuple[nn.Module, str, SparsityRegConfig]]], None]


Gradients = Callable[[nn.Module], None]


def compress_model(model: nn.Module, policy: Policy, regularize: Regularize | None = None,
                   gradients: Gradients | None = None,
                   ) -> tuple[nn.Module, dict[str, LayerState], list[str]]:
    """A compressed copy of `model` (weights baked in), its per-layer state, and skip notes.

    `regularize(model, [(module, param name, config), ...])` trains with the sparsity
    penalties of the layers that have one; it runs after the shape methods and before the
    value methods, and is required when the policy uses `sparsity_reg`.
    `gradients(model)` leaves dL/dw in every parameter's `.grad` (a few training batches); it is
    required when a structured rule uses the taylor criterion.
    """
    model = copy.deepcopy(model).eval()
    layers = discover_layers(model)
    modules = dict(model.named_modules())
    resolution = policy.resolve(layers, modules)
    states = {name: LayerState(kind=next(l.kind for l in layers if l.name == name)) for name in resolution.plans}
    reg_layers = [name for name, plan in resolution.plans.items() if "sparsity_reg" in plan]
    if reg_layers and regularize is None:
        raise PolicyError(f"{policy.source}: sparsity_reg trains the model, so it needs training data "
                          "(give --corpus and distillation settings)")
    taylor = [name for name, plan in resolution.plans.items()
              if "structured" in plan and plan["structured"].criterion == "taylor"]
    if taylor:
        if gradients is None:
            raise PolicyError(f"{policy.source}: layer {taylor[0]}: structured.criterion taylor needs training "
                              "data for its gradients (give --corpus)")
        with torch.enable_grad():
            gradients(model)
    for cls in LAYER_METHODS:
        if cls is VALUE_METHODS[0] and reg_layers:
            regularize(model, _penalised_tensors(model, reg_layers, resolution.plans, states))
            model.eval()
        # Shapes change under structured pruning and low-rank: look layers up afresh.
        by_name = {l.name: l for l in discover_layers(model)}
        for name, plan in resolution.plans.items():
            cfg = plan.get(cls.key)
            if cfg is not None:
                _apply_one(model, by_name[name], cfg, states[name])
    if any(st.bits for st in states.values()):
        round_small_tensors(model)
    model.zero_grad(set_to_none=True)
    return model.eval(), states, resolution.skipped


def rebuild_structure(model: nn.Module, states: dict[str, LayerState]) -> nn.Module:
    """Give a fresh base model the shapes of a compressed one, so its weights load exactly."""
    layers = {l.name: l for l in discover_layers(model)}
    modules = dict(model.named_modules())
    for name, st in states.items():
        if st.kept is not None:
            shrink(find_block(modules, layers[name]), torch.arange(st.kept))
    layers = {l.name: l for l in discover_layers(model)}
    for name, st in states.items():
        if st.rank is not None:
            layer = layers[name]
            bias = getattr(model.get_submodule(layer.module_name), "bias", None) is not None
            _set_module(model, layer.module_name, _low_rank_module(layer, st.rank, bias))
    return model


def states_to_dict(states: dict[str, LayerState]) -> dict:
    return {k: asdict(v) for k, v in states.items()}


def states_from_dict(d: dict) -> dict[str, LayerState]:
    return {k: LayerState(**v) for k, v in d.items()}
