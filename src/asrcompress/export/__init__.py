"""Deployment: ONNX export with int8 / 4-bit kernels, and an ONNX Runtime acoustic model."""

from ._deploy import DeployModel, PointwiseLinear
from ._onnx import export_onnx
from ._runtime import OnnxAcousticModel, session

__all__ = ["DeployModel", "OnnxAcousticModel", "PointwiseLinear", "export_onnx", "session"]
