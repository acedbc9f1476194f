"""Compression engine: per-layer policies, one config + handler per method, size accounting."""

from . import _cluster, _lowrank, _prune, _quant, _sparsity_reg, _structured  # noqa: F401  (register the handlers)
from ._apply import LayerState, compress_model, rebuild_structure, states_from_dict, states_to_dict
from ._configs import (
    LAYER_METHODS, QUANT_BITS, ClusterConfig, ConfigError, DistillConfig, LowRankConfig,
    MagnitudePruneConfig, MethodConfig, QuantConfig, SparsityRegConfig, StructuredPruneConfig,
)
from ._layers import KINDS, LayerInfo, LowRankConv1d, LowRankLinear, discover_layers, get_weight
from ._policy import Policy, PolicyError, Resolution, Rule
from ._registry import HANDLERS, Factors, Handler, Mask, Values, register
from ._size import size_report, tensor_formats

__all__ = [
    "HANDLERS", "KINDS", "LAYER_METHODS", "QUANT_BITS", "ClusterConfig", "ConfigError", "DistillConfig",
    "Factors", "Handler", "LayerInfo", "LayerState", "LowRankConfig", "LowRankConv1d", "LowRankLinear",
    "MagnitudePruneConfig", "Mask", "MethodConfig", "Policy", "PolicyError", "QuantConfig", "Resolution",
    "Rule", "SparsityRegConfig", "StructuredPruneConfig", "Values", "compress_model", "discover_layers", "get_weight",
    "rebuild_structure", "register", "size_report", "states_from_dict", "states_to_dict", "tensor_formats",
]
