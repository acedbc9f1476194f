"""Hardware: device profiles, measured latency and memory, the calibrated latency predictor."""

from ._calibrate import calibrate, host_description
from ._graph import Op, graph_ops, summarize
from ._latency import latency_report
from ._measure import frames_for, measure_latency, peak_memory_mb
from ._predict import op_us, predict_ms
from ._profile import CLASSES, KERNELS, Profile, load_profile, load_profiles, parse_profile

from ._write import write_profile

__all__ = ["CLASSES", "KERNELS", "Op", "Profile", "calibrate", "frames_for", "graph_ops", "host_description", "latency_report",
           "load_profile", "load_profiles", "measure_latency", "op_us", "parse_profile", "peak_memory_mb", "predict_ms", "summarize"]
__all__ += ['write_profile']
