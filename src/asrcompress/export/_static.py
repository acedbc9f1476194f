"""Static activation quantization: per-tensor activation ranges measured on a calibration set.

With `calibration` features, each int8 MatMul quantizes its input with a fixed scale and zero
point (uint8, asymmetric) found by ONNX Runtime's min-max calibrator on the fp32 graph,
instead of measuring the range of every input at run time (`DynamicQuantizeMatMul`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from onnx import helper, numpy_helper

from ..models import FeatureSpec
from ._kernels import GridWeight

def activation_ranges(fp32_path: Path, feats: Iterable[np.ndarray], tensors: set[str], input_name: str,
                      ) -> dict[str, tuple[float, float]]:
    """(min, max) over the calibration inputs of each named tensor of the fp32 graph."""
    from onnxruntime.quantization.calibrate import CalibrationDataReader, CalibrationMethod, create_calibrator

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(feats)

        def get_next(self) -> dict | None:
            f = next(self.it, None)
            return None if f is None else {input_name: np.asarray(f, dtype=np.float32)}

    with tempfile.TemporaryDirectory() as tmp:
        cal = create_calibrator(str(fp32_path), ["MatMul", "Gemm"], augmented_model_path=str(Path(tmp) / "aug.onnx"),
                                calibrate_method=CalibrationMethod.MinMax)
        # The augmented graph outputs each tensor's ReduceMin / ReduceMax, so a run keeps two
        # scalars per tensor. (Its max_intermediate_outputs option drops data instead of
        # folding it in: onnxruntime 1.32 calibrate.py, MinMaxCalibrater.collect_data.)
        cal.collect_data(Reader())
        data = cal.compute_data()
    return {t: (float(np.min(data[t].range_value[0])), float(np.max(data[t].range_value[1])))
            for t in tensors if t in data}


_MIN_SCALE = 1e-12


def uint8_params(lo: float, hi: float) -> tuple[np.float32, np.uint8]:
    """Asymmetric uint8 scale and zero point covering [min(lo, 0), max(hi, 0)] (0 exact)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    # A (near-)constant zero tensor still needs a positive fp32 scale.
    scale = max((hi - lo) / 255.0, _MIN_SCALE)
    zero = int(np.clip(np.rint(-lo / scale), 0, 255))
    return np.float32(scale), np.uint8(zero)


def static_int8_matmul(name: str, a: str, y: str, g: GridWeight, a_range: tuple[float, float]) -> tuple[list, list]:
    """Y = A @ W^T as QuantizeLinear(A) -> MatMulIntegerToFloat, the activation range fixed."""
    n = g.codes.shape[0]
    a_scale, a_zero = uint8_params(*a_range)
    b = numpy_helper.from_array((g.codes.T + 128).astype(np.uint8), f"{name}.qweight")  # (K, N)
    tensors = [
        numpy_helper.from_array(np.array(a_scale), f"{name}.ascale"),
        numpy_helper.from_array(np.array(a_zero), f"{name}.azero"),
        b,
        numpy_helper.from_array(g.scales, f"{name}.scale"),
        numpy_helper.from_array(np.full(n, 128, dtype=np.uint8), f"{name}.zero_point"),
    ]
    aq = f"{name}.a_uint8"
    nodes = [
        helper.make_node("QuantizeLinear", [a, f"{name}.ascale", f"{name}.azero"], [aq], name=f"{name}.quantize"),
        helper.make_node("MatMulIntegerToFloat", [aq, b.name, f"{name}.ascale", f"{name}.scale", f"{name}.azero",
                                                  f"{name}.zero_point"], [y], name=f"{name}.int8_matmul_static",
                         domain="com.microsoft"),
    ]
    return nodes, tensors


def calibration_features(waves: Sequence[np.ndarray], spec: FeatureSpec) -> list[np.ndarray]:
    """The graph's inputs for these utterances (e.g. (1, T, n_mels) log-mel), as the deployed app computes them."""
    return [spec.prepare(w) for w in waves]
