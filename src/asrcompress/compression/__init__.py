"""Compression engine: per-layer policies, one module per method (config + handler + search
choices, registered in `METHODS`), size accounting and recovery."""

from . import _cluster, _depth, _lowrank, _prune, _quant, _separable, _sparsity_reg, _structured, _tucker  # noqa: F401  (register)
from ._apply import LayerState, compress_model, rebuild_structure, states_from_dict, states_to_dict
from ._calibration import Calibration
from ._cluster import ClusterConfig
from ._depth import DepthConfig
from ._separable import SeparableConfig
from ._tucker import TuckerConfig
from ._configs import ConfigError, DistillConfig, MethodConfig
from ._layers import KINDS, LayerInfo, LowRankConv1d, LowRankLinear, discover_layers, get_weight
from ._lowrank import LowRankConfig
from ._policy import Policy, PolicyError, Resolution, Rule
from ._prune import MagnitudePruneConfig
from ._quant import QUANT_BITS, QuantConfig
from ._recover import Compressed, Monitor, Recovery, Watch, compress_and_recover, needs_data
from ._registry import (
    HANDLERS, METHODS, Choice, Factors, Handler, Mask, Method, Projection, Replace, Units, Values, check_choice, choice_keys,
    configs_from_choices, lowering, neutral_choices, ordered, register, uniform_policies, unregister,
)
from ._size import size_report, tensor_formats
from ._sparsity_reg import SparsityRegConfig
from ._structured import StructuredPruneConfig

from ._apply import layer_tensors
from ._attention import HeadPrunedAttention
from ._io import apply_structure, read_fp32_bytes, read_states, write_compression
from ._run import compress_folder, distill_config, load_kd_data
from ._distill import TeacherCache, distill

__all__ = [
    "Calibration", "DepthConfig", "SeparableConfig", "TuckerConfig", "HANDLERS", "KINDS", "METHODS", "QUANT_BITS", "Choice", "ClusterConfig", "Compressed", "Monitor", "Recovery",
    "compress_and_recover", "needs_data", "ConfigError", "DistillConfig",
    "Factors", "Handler", "Replace", "LayerInfo", "LayerState", "LowRankConfig", "LowRankConv1d", "LowRankLinear",
    "MagnitudePruneConfig", "Mask", "Method", "MethodConfig", "Policy", "PolicyError", "Projection", "QuantConfig",
    "Resolution", "Rule", "SparsityRegConfig", "StructuredPruneConfig", "Units", "Values", "check_choice",
    "choice_keys", "compress_model", "configs_from_choices", "discover_layers", "get_weight", "neutral_choices",
    "ordered", "rebuild_structure", "register", "size_report", "states_from_dict", "states_to_dict",
    "tensor_formats", "uniform_policies", "unregister",
]
__all__ += ['Watch', 'lowering', 'HeadPrunedAttention', 'apply_structure', 'compress_folder', 'distill_config', 'layer_tensors', 'load_kd_data', 'read_fp32_bytes', 'read_states', 'write_compression']
__all__ += ['TeacherCache', 'distill']
