"""Deployment: ONNX export with int8 / 4-bit kernels, and an ONNX Runtime acoustic model."""

from ._deploy import DeployModel, PointwiseLinear
from ._onnx import export_onnx
from ._runtime import OnnxAcousticModel, session
from ._static import calibration_features

__all__ = ["DeployModel", "OnnxAcousticModel", "PointwiseLinear", "calibration_features", "export_onnx", "session"]
