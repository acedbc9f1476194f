"""The benchmark (`asrcompress bench`): the search against random search, uniform hand policies
and peer tools, every point scored side by side in one run (docs/benchmarks.md)."""

from ._harness import Arm, BenchOptions, Point, run_bench
from ._report import REFERENCE, WER_TOLERANCE, summarize

__all__ = ["Arm", "BenchOptions", "Point", "REFERENCE", "WER_TOLERANCE", "run_bench", "summarize"]
