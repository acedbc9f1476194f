"""The benchmark: its statistics and scoring rules on hand-made points, its CLI errors, and (slow)
`bench --quick` end to end, resumed."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asrcompress.bench import REFERENCE, WER_TOLERANCE, Arm, Point, summarize
from asrcompress.bench._report import dominates
from asrcompress.bench._stats import normalised_hypervolume, wer_ratio_ci
from asrcompress.compression import uniform_policies

from ..conftest import REPO


def _point(arm: str, wer: float, speedup: float, size: float, runtime: str = "onnx", seed=None) -> Point:
    p = Point(arm, f"{arm}-{wer}", "x.onnx", runtime=runtime, seed=seed)
    p.extra.update(wer_ratio_deployed=wer, wer_ratio_greedy=wer, speedup=speedup)
    if runtime == "onnx":
        p.extra["onnx_size_ratio"] = size
    return p


def test_bootstrap_interval_matches_a_direct_computation():
    """The paired bootstrap resamples utterances, the same draw for both models: here recomputed
    by hand with numpy from the same generator."""
    rng = np.random.default_rng(3)
    base = rng.integers(0, 4, 300).tolist()
    point = [max(0, b + int(rng.integers(-1, 2))) for b in base]
    ratio, (lo, hi) = wer_ratio_ci(base, point, [8] * 300, resamples=1000, seed=7)
    assert ratio == pytest.approx(sum(point) / sum(base))
    idx = np.random.default_rng(7).integers(0, 300, size=(1000, 300))
    direct = np.asarray(point)[idx].sum(1) / np.asarray(base)[idx].sum(1)
    assert (lo, hi) == pytest.approx(tuple(np.percentile(direct, [2.5, 97.5])))
    assert lo <= ratio <= hi
    same, (a, b) = wer_ratio_ci(base, base, [8] * 300)
    assert same == a == b == 1.0  # a model against itself: no spread at all


def test_hypervolume_with_the_new_reference_is_the_box_volume():
    # one point (WER 1.0x, half the latency, a quarter of the size) against (1.10, 1.0, 1.0)
    assert REFERENCE == (1.10, 1.0, 1.0)
    assert normalised_hypervolume([(1.0, 0.5, 0.25)]) == pytest.approx(0.10 * 0.5 * 0.75)
    # two points: the union of their boxes (inclusion-exclusion by hand)
    a, b = (1.0, 0.5, 0.5), (1.05, 0.25, 0.5)
    union = 0.10 * 0.5 * 0.5 + 0.05 * 0.75 * 0.5 - 0.05 * 0.5 * 0.5
    assert normalised_hypervolume([a, b]) == pytest.approx(union)
    # 11% worse WER, or slower, or larger than the base: no volume
    assert normalised_hypervolume([(1.11, 0.5, 0.5), (1.0, 1.01, 0.5), (1.0, 0.5, 1.2)]) == 0.0


def test_onnx_and_pytorch_points_never_share_a_hypervolume():
    onnx_arm = Arm("search", "search", [_point("search", 1.0, 2.0, 4.0, seed=0)], 60.0, seed=0)
    torch_arm = Arm("torch_ao_dynamic", "peer", [_point("torch_ao_dynamic", 0.9, 10.0, 0.0, runtime="pytorch")], 1.0)
    s = summarize([onnx_arm, torch_arm])
    assert s["arms"]["torch_ao_dynamic"]["deployed"]["hypervolume"] == 0.0  # a PyTorch point adds no ONNX volume
    assert s["arms"]["torch_ao_dynamic"]["deployed"]["points"] == 0
    assert s["arms"]["search"]["deployed"]["hypervolume"] == pytest.approx(0.10 * 0.5 * 0.75)
    assert "torch_ao_dynamic:torch_ao_dynamic-0.9" not in s["not_dominated_by_search_deployed"]


def test_best_figures_count_only_points_within_the_tolerance_and_seeds_give_a_spread():
    arms = [Arm("search", "search", [_point("search", 1.0, 1.5, 4.0, seed=s), _point("search", WER_TOLERANCE + 0.01,
                5.0, 20.0, seed=s), _point("search", WER_TOLERANCE, 2.0 + s, 8.0, seed=s)], 60.0, seed=s)
            for s in range(3)]
    row = summarize(arms)["arms"]["search"]["deployed"]
    assert row["best_size_ratio"] == {"median": 8.0, "min": 8.0, "max": 8.0}
    assert row["best_file_size_ratio"] is None  # only the scoring step measures files
    assert row["best_speedup"] == {"median": 3.0, "min": 2.0, "max": 4.0}


def test_search_against_random_is_the_median_of_paired_seed_ratios():
    search = [Arm("search", "search", [_point("search", 1.0, 2.0, s + 2.0, seed=s)], 1.0, seed=s) for s in range(3)]
    rand = [Arm("random", "random", [_point("random", 1.0, 2.0, 2.0, seed=s)], 1.0, seed=s) for s in range(3)]
    hv = summarize(search + rand)["hv_vs_random_deployed"]
    want = [normalised_hypervolume([(1.0, 0.5, 1 / (s + 2.0))]) / normalised_hypervolume([(1.0, 0.5, 0.5)])
            for s in range(3)]
    assert hv["paired"] == pytest.approx(want) and hv["median"] == pytest.approx(sorted(want)[1])


def test_points_the_search_does_not_dominate_are_listed():
    search = Arm("search", "search", [_point("search", 1.0, 2.0, 8.0, seed=0)], 0.0, seed=0)
    uniform = Arm("uniform", "uniform", [_point("uniform", 1.01, 1.5, 4.0), _point("uniform", 0.99, 1.1, 4.0)], 0.0)
    assert summarize([search, uniform])["not_dominated_by_search_deployed"] == ["uniform:uniform-0.99"]
    assert dominates([1, 1, 1], [1, 1, 2]) and not dominates([1, 1, 1], [1, 1, 1])


def test_uniform_policies_are_the_five_the_issue_names():
    assert set(uniform_policies()) == {"int8", "int4", "sparse50", "structured25", "lowrank50"}


def test_bad_budget_and_missing_corpus_are_one_line_errors(tmp_path):
    from ..test_errors import one_error_line, run_cli  # in this process: no interpreter start per case

    for args, needle in ((["--strategy", "one-stage", "--budget-minutes", "0"], "--budget-minutes"),
                         (["--budget-minutes", "5"], "--budget-minutes applies to --strategy one-stage"),
                         (["--strategy", "one-stage", "--rungs", "5"], "--rungs applies to --strategy staged"),
                         (["--rungs", "9,3"], "--rungs 9,3 must be increasing"),
                         (["--strategy", "both"], "--strategy 'both'"),
                         (["--seeds", "0"], "--seeds"),
                         (["--corpus", str(tmp_path)], "train.jsonl")):
        line = one_error_line(*run_cli(["bench", *args], REPO))
        assert needle in line, (args, line)


@pytest.mark.slow
def test_quick_bench_runs_end_to_end_and_resumes(tmp_path):
    """`asrcompress bench --quick`: every arm scored on both decoders, the size column is each
    .onnx file's stored bytes, the JSON keys the docs promise, figure, MLflow; a second run of
    the same command re-uses every finished step."""
    from asrcompress.bench._peers import onnx_stored_bytes

    out = tmp_path / "bench"
    cmd = [sys.executable, "-m", "asrcompress.cli", "bench", "--quick", "--no-peers", "--out", str(out),
           "--workdir", str(tmp_path / "work"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads(out.with_suffix(".json").read_text())
    for name in ("search", "random", "uniform", "ort_dynamic_matmul", "ort_nbits_b32_a0", "torch_ao_dynamic"):
        row = doc["arms"][name]
        assert row["error"] == "", (name, row["error"])
        for d in ("deployed", "greedy"):
            assert {"hypervolume", "best_size_ratio", "best_file_size_ratio", "best_speedup", "points"} <= set(row[d])
    base_onnx = Path(doc["run_folder"]) / "base.onnx"
    for pt in doc["all_points"]:
        if pt["runtime"] == "onnx":
            assert pt["onnx_size_ratio"] == pytest.approx(onnx_stored_bytes(base_onnx) / onnx_stored_bytes(Path(pt["file"])))
            assert pt["file_size_ratio"] == pytest.approx(base_onnx.stat().st_size / Path(pt["file"]).stat().st_size)
            lo, hi = pt["ci_deployed"]
            assert lo <= pt["wer_ratio_deployed"] <= hi
    assert len([pt for pt in doc["all_points"] if pt["arm"] == "uniform"]) == 5
    # both search arms ran the staged search with the same options; only the proposals differ
    assert doc["strategy"] == "staged" and doc["staged"]["candidates"] == 4
    run_folder = Path(doc["run_folder"])
    for name, sampler in (("search", "nsga2"), ("random", "random")):
        cands = json.loads((run_folder / f"{name}-s0" / "candidates" / "candidates.json").read_text())
        assert cands["surrogate"]["sampler"] == sampler and cands["surrogate"]["trials"] == 300
        assert cands["scan"]["cached"] == cands["scan"]["options"]  # the shared scan, run once beforehand
        assert doc["arms"][name]["deployed"]["points"] >= 1
        assert f"{sampler} proposals" in doc["arms"][name]["note"]
    assert 0 < doc["base"]["wer"]["deployed"] < doc["base"]["wer"]["greedy"] < 1
    assert Path(out.with_suffix(".html")).exists() and "| search |" in out.with_suffix(".md").read_text()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("asrcompress/bench").experiment_id])
    assert {r.info.run_name for r in runs} >= {"search", "random", "uniform"}
    _points_rebuild_within_their_interval(doc, tmp_path)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=REPO)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "arm, seed" not in again.stderr and "uniform hand policies" not in again.stderr  # nothing re-run
    assert "scored " not in again.stderr  # every point's errors came from the cache


def test_a_run_records_the_code_it_was_made_by_and_a_change_on_resume(tmp_path):
    from asrcompress.bench._state import State, source_fingerprint

    fp = source_fingerprint()
    assert fp == source_fingerprint() and len(fp) == 12
    state = State(tmp_path / "run", {"model": "m"})
    assert state.code(fp) == [fp]
    assert State(tmp_path / "run", {"model": "m"}).code(fp) == [fp]  # resumed on the same code: one entry
    assert State(tmp_path / "run", {"model": "m"}).code("0123456789ab") == [fp, "0123456789ab"]
    doc = json.loads((tmp_path / "run" / "state.json").read_text())
    assert doc["code"] == [fp, "0123456789ab"] and doc["key"] == {"model": "m"}


def _points_rebuild_within_their_interval(doc: dict, tmp_path: Path) -> None:
    """Issue 18's reproducible points: a recipe per search arm's best-size and best-speed point
    within 5%, and `compress --recipe` rebuilds one whose test WER lies in the point's interval."""
    import yaml

    expected = {(pt["arm"], pt["seed"]) for pt in doc["all_points"]
                if pt["arm"] in ("search", "random") and pt["wer_ratio_deployed"] <= WER_TOLERANCE}
    files = doc["points_files"]
    assert {(Path(f).name.split("-s")[0], int(Path(f).name.split("-s")[1].split("-")[0])) for f in files} == expected
    assert len(files) == 2 * len(expected)  # best size and best speed, the same point or not
    if not files:
        return
    recipe = yaml.safe_load(Path(files[0]).read_text())
    p = subprocess.run([sys.executable, "-m", "asrcompress.cli", "compress", "--recipe", files[0], "--out",
                        str(tmp_path / "rebuilt")], capture_output=True, text=True, timeout=1800, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    p = subprocess.run([sys.executable, "-m", "asrcompress.cli", "evaluate", "--model", str(tmp_path / "rebuilt"),
                        "--manifest", doc["base"]["manifest"], "--json"], capture_output=True, text=True, timeout=1800,
                       cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    ratio = json.loads(p.stdout)["wer"] / doc["base"]["wer"]["deployed"]
    lo, hi = recipe["measured"]["ci_deployed"]
    assert lo <= ratio <= hi, (ratio, recipe["measured"])


def test_more_seeds_extend_a_run_and_other_inputs_start_their_own(tmp_path):
    """The run folder's key leaves the seed count out (each seed's arms are steps of their own),
    so `--seeds 3` resumes a finished `--seeds 1` run; a changed input still starts its own."""
    from dataclasses import replace

    from asrcompress.bench import BenchOptions
    from asrcompress.bench._harness import key_parts
    from asrcompress.bench._state import run_key

    space = tmp_path / "space.yaml"
    space.write_text("version: 1\n")
    o = BenchOptions(model=tmp_path, corpus=tmp_path, space=space, budget_minutes=20.0, workers=2,
                     out=tmp_path / "b", workdir=tmp_path / "w", tracking_uri="", seeds=1)

    def key(opts: BenchOptions) -> str:
        return run_key(key_parts(opts, "m", "t", "c"))

    assert key(replace(o, seeds=3)) == key(o)
    assert key(replace(o, kd_utterances=300)) != key(o)
    assert key(replace(o, staged={"proposals": 300})) != key(o)
    before = key(o)
    space.write_text("version: 1\n# changed\n")
    assert key(o) != before
