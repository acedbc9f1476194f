"""The staged search (`asrcompress search`'s default strategy): its progress lines, the flags it
refuses, and on a tiny model the whole walk from one command (scan, surrogate, candidates,
finalists, MLflow), its resume from each stage's file, `front`, and `export --pick knee`."""

import io
import json
import re

import pytest
from rich.console import Console
from asrcompress.cli._live import StagedProgress

from ..conftest import needs_synth
from ..test_errors import one_error_line, run_cli


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_progress_in_a_log_is_one_line_per_stage_and_at_most_one_per_interval():
    buf = io.StringIO()
    clock = _Clock()
    p = StagedProgress("demo", Console(file=buf, force_terminal=False, width=200), every_s=10.0, clock=clock)
    p("scan", 1, 10)
    clock.t = 3.0
    p("scan", 2, 10)  # within 10 s of the last line: not printed
    clock.t = 12.0
    p("scan", 3, 10)
    p("scan", 10, 10)  # the stage's last item is always printed
    p("surrogate", 5, 100)  # a new stage is always printed
    p.stop()
    lines = buf.getvalue().splitlines()
    assert lines == ["search demo [scan]: 1/10 (0 s)", "search demo [scan]: 3/10 (12 s)",
                     "search demo [scan]: 10/10 (12 s)", "search demo [surrogate]: 5/100 (12 s)"]


@pytest.mark.parametrize("extra, flag", [(["--trials", "3"], "--trials"), (["--workers", "2"], "--workers"),
                                         (["--backend", "ray"], "--backend")])
def test_one_stage_flags_are_refused_by_the_staged_search(extra, flag, tmp_path):
    line = one_error_line(*run_cli(["search", "--space", "quick", *extra], tmp_path))
    assert f"{flag} applies to --strategy one-stage" in line
    assert not (tmp_path / "mlruns").exists()  # refused before anything is written


def test_staged_flags_are_refused_by_the_one_stage_search(tmp_path):
    line = one_error_line(*run_cli(["search", "--space", "quick", "--strategy", "one-stage", "--rungs", "1,2"],
                                   tmp_path))
    assert "--rungs applies to --strategy staged only" in line
    line = one_error_line(*run_cli(["search", "--space", "quick", "--strategy", "two"], tmp_path))
    assert "--strategy 'two' is not one of staged, one-stage" in line
    line = one_error_line(*run_cli(["search", "--space", "quick", "--rungs", "3,x"], tmp_path))
    assert "--rungs '3,x': not comma-separated integers" in line
    line = one_error_line(*run_cli(["search", "--space", "quick", "--sampler", "tpe"], tmp_path))
    assert "--sampler 'tpe' is not one of nsga2, random for the staged search's proposals" in line
    assert not (tmp_path / "mlruns").exists()  # refused before anything is written


@pytest.mark.slow  # ~2 min (make test-reliability runs it)
@needs_synth
def test_staged_search_from_one_command_resumes_and_exports_its_knee(tiny_corpus, tmp_path, monkeypatch):
    from asrcompress.models import save_model

    from ..compression.models import conformer

    import asrcompress.search._finalists as fin

    monkeypatch.setattr(fin, "MIN_KL", 0.0)  # a random tiny model's cuts barely move its posteriors: distil them
    save_model(conformer(), tmp_path / "tiny")
    (tmp_path / "s.yaml").write_text(json.dumps({
        "version": 1, "name": "s", "objectives": ["wer", "latency@host"], "groups": [
            {"pattern": "encoder.conformer_layers.*.ffn*.sequential.1", "structured": [0.0, 0.5]},
            {"pattern": "encoder.*", "bits": [None, 8, 4]}]}))
    cmd = ["search", "--space", "s.yaml", "--model", "tiny", "--corpus", str(tiny_corpus), "--study", "st",
           "--proposals", "60", "--candidates", "4", "--rungs", "2,4", "--dev-utterances", "4",
           "--kd-utterances", "8"]
    code, out, err = run_cli(cmd, tmp_path)
    assert code == 0, err[-3000:]
    folder = tmp_path / "mlruns" / "studies" / "st" / "candidates"
    doc = json.loads((folder / "finalists.json").read_text())
    assert doc["knee"] and "knee" in out and "export the knee" in out
    # every stage told in the log, in order
    stages = re.findall(r"search st \[([a-z]+)", err)
    order = [s for i, s in enumerate(stages) if s not in stages[:i]]
    assert order[:3] == ["scan", "surrogate", "score"] and order[-1] == "summary" and "rung" in order
    assert any(r["steps"] for r in doc["finalists"])
    # the finalists are the study the user named: front, MLflow runs with the Pareto tags
    code, out, err = run_cli(["front", "--study", "st", "--json"], tmp_path)
    assert code == 0, err
    front = json.loads(out)
    names = {r["name"] for r in doc["finalists"] if r.get("front")}
    assert len(front) == len(names) and all(set(r["values"]) == {"wer", "size", "latency@host"} for r in front)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("asrcompress/st")
    runs = client.search_runs([exp.experiment_id], "tags.pareto = 'true'")
    assert len(runs) == len(names) and all("latency_at_host" in r.data.metrics for r in runs)

    # resumed: every stage from its file, nothing trained or logged again
    code, out, err = run_cli([*cmd, "--json"], tmp_path)
    assert code == 0, err[-3000:]
    s2 = json.loads(out)
    assert s2["seconds"] == {} and s2["knee"] == doc["knee"]
    assert len(client.search_runs([exp.experiment_id], "tags.asrcompress_role = 'trial'")) == \
        sum(r["finalist"] for r in doc["finalists"])
    # stopped after training (no timing, front or test yet): only those run again
    cut = {k: v for k, v in doc.items() if k not in ("test", "front_axes", "knee", "timing")}
    (folder / "finalists.json").write_text(json.dumps(cut))
    code, out, err = run_cli([*cmd, "--json"], tmp_path)
    assert code == 0, err[-3000:]
    s3 = json.loads(out)
    assert s3["seconds"] == {} and s3["test"]["utterances"] == 8 and s3["knee"]
    # a resume may not change what the study was run with
    line = one_error_line(*run_cli(["search", "--study", "st", "--rungs", "2,8"], tmp_path))
    assert "--rungs 2,8 differs from the study's 2,4" in line
    line = one_error_line(*run_cli(["search", "--study", "st", "--sampler", "random"], tmp_path))
    assert "--sampler random differs from the study's nsga2" in line
    line = one_error_line(*run_cli(["search", "--study", "st", "--seed", "3"], tmp_path))
    assert "--seed 3 differs from the study's 0" in line
    line = one_error_line(*run_cli(["search", "--study", "st", "--strategy", "one-stage"], tmp_path))
    assert "is a staged search" in line

    # export the knee: bundled from the finalist's model folder, re-measured on its ONNX
    code, out, err = run_cli(["export", "--study", "st", "--pick", "knee", "--out", "bundle"], tmp_path)
    assert code == 0, err[-3000:]
    card = json.loads(out)
    knee = next(r for r in front if r["name"] == s3["knee"])
    assert card["trial"] == knee["trial"] and card["search"]["wer"] == pytest.approx(knee["values"]["wer"])
    assert (tmp_path / "bundle" / "model.onnx").is_file() and "latency@host" in card["measured_on_onnx"]
    assert abs(card["wer_difference_points"]) <= 0.3  # issue 18: the knee re-measured within 0.3 points
    code, out, err = run_cli(["export", "--study", "st", "--pick", "min size", "--out", "b2", "--no-register"],
                             tmp_path)
    assert code == 0, err[-3000:]
    assert json.loads(out)["search"]["size"] == pytest.approx(min(r["values"]["size"] for r in front))
