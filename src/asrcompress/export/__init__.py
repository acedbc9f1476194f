"""Deployment: ONNX export with int8 / 4-bit kernels, and an ONNX Runtime acoustic model."""

from ._deploy import DeployModel, PointwiseLinear
from ._onnx import export_onnx
from ._runtime import OnnxAcousticModel, session
from ._static import calibration_features

from ._bundle import SUMS, verify_bundle, verify_if_bundled, write_bundle, write_sums
from ._int8_paths import Int8Paths, default_int8_paths, parse_int8_paths
from ._kernels import GridWeight, int8_matmul, nbits_matmul
from ._runtime import session_options

__all__ = ["DeployModel", "OnnxAcousticModel", "PointwiseLinear", "calibration_features", "export_onnx", "session"]

from .._callable import make_callable as _make_callable

__all__ += ['Int8Paths', 'default_int8_paths', 'parse_int8_paths', 'SUMS', 'GridWeight', 'int8_matmul', 'nbits_matmul', 'session_options', 'verify_bundle', 'verify_if_bundled', 'write_bundle', 'write_sums']

_make_callable(__name__, "export")  # asrcompress.export(...) is the API function (docs/api.md)
