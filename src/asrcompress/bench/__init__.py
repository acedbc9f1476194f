"""The benchmark (`asrcompress bench`): the search against random search, uniform hand policies
and peer tools, every point scored side by side in one resumable run (docs/benchmarks.md)."""

from ._harness import TEST_SEED, Arm, BenchOptions, Point, run_bench
from ._report import WER_TOLERANCE, summarize
from ._stats import REFERENCE, normalised_hypervolume, wer_ratio_ci

__all__ = ["Arm", "BenchOptions", "Point", "REFERENCE", "TEST_SEED", "WER_TOLERANCE", "normalised_hypervolume",
           "run_bench", "summarize", "wer_ratio_ci"]
