"""The benchmark: its scoring rules on hand-made points, its CLI errors, and (slow) `bench --quick`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from asrcompress.compression import uniform_policies
from asrcompress.bench import Arm, Point
from asrcompress.bench import REFERENCE, WER_TOLERANCE, summarize
from asrcompress.bench._report import _dominates
from asrcompress.search._pareto import hypervolume

from ..conftest import REPO
from ..test_cli import assert_one_line_error, run


def _point(arm: str, wer_rel: float, speedup: float, size: float) -> Point:
    return Point(arm, f"{arm}-{wer_rel}", size, "test", extra={"wer_rel": wer_rel, "speedup": speedup})


def test_best_figures_only_count_points_within_the_wer_tolerance():
    arm = Arm("search", "search", [_point("search", 1.0, 1.5, 4.0), _point("search", WER_TOLERANCE + 0.01, 5.0, 20.0),
                                   _point("search", WER_TOLERANCE, 2.0, 8.0)], 120.0)
    row = summarize([arm])["arms"]["search"]
    assert row["best_size_ratio"] == 8.0 and row["best_speedup"] == 2.0
    assert row["points"] == 3 and row["points_within_5pct"] == 2 and row["cpu_minutes"] == 2.0


def test_hypervolume_is_the_box_volume_of_one_point_below_the_reference():
    # objectives (WER/base, 1/speed-up, 1/size ratio) against (2, 1.1, 1.1)
    arm = Arm("search", "search", [_point("search", 1.0, 2.0, 4.0)], 0.0)
    want = (REFERENCE[0] - 1.0) * (REFERENCE[1] - 0.5) * (REFERENCE[2] - 0.25)
    assert summarize([arm])["arms"]["search"]["hypervolume"] == pytest.approx(want)
    assert hypervolume([[3.0, 0.5, 0.5]], REFERENCE) == 0.0  # outside the reference point: no volume


def test_points_the_search_does_not_dominate_are_listed():
    search = Arm("search", "search", [_point("search", 1.0, 2.0, 8.0)], 0.0)
    uniform = Arm("uniform", "uniform", [_point("uniform", 1.01, 1.5, 4.0), _point("uniform", 0.99, 1.1, 4.0)], 0.0)
    assert summarize([search, uniform])["not_dominated_by_search"] == ["uniform:uniform-0.99"]
    assert _dominates([1, 1, 1], [1, 1, 2]) and not _dominates([1, 1, 1], [1, 1, 1])


def test_uniform_policies_are_the_five_the_issue_names():
    assert set(uniform_policies()) == {"int8", "int4", "sparse50", "structured25", "lowrank50"}


def test_bad_budget_and_missing_corpus_are_one_line_errors(tmp_path):
    assert_one_line_error(run("bench", "--budget-minutes", "0"), "--budget-minutes")
    assert_one_line_error(run("bench", "--corpus", str(tmp_path)), "train.jsonl")


@pytest.mark.slow
def test_quick_bench_runs_end_to_end(tmp_path):
    """`asrcompress bench --quick`: every arm scored, the JSON keys the docs promise, figure, MLflow."""
    out = tmp_path / "bench"
    p = subprocess.run([sys.executable, "-m", "asrcompress.cli", "bench", "--quick", "--out", str(out),
                        "--workdir", str(tmp_path / "work"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"],
                       capture_output=True, text=True, timeout=1500, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads(out.with_suffix(".json").read_text())
    for name in ("search", "random", "uniform", "ort_quantize_dynamic", "ort_matmul_nbits", "torch_ao_dynamic"):
        row = doc["arms"][name]
        assert {"hypervolume", "best_size_ratio", "best_speedup", "cpu_minutes", "wer_base"} <= set(row)
        assert row["error"] == "" and row["points"] >= 1, (name, row)
    assert len([pt for pt in doc["all_points"] if pt["arm"] == "uniform"]) == 5
    assert doc["arms"]["search"]["cpu_minutes"] > 0 and 0 < doc["base"]["test_wer"] < 1
    assert Path(out.with_suffix(".html")).exists() and "| search |" in out.with_suffix(".md").read_text()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("asrcompress/bench").experiment_id])
    assert {r.info.run_name for r in runs} >= {"search", "random", "uniform"}
