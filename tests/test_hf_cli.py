"""A Hugging Face CTC folder through the whole chain, as a user runs it (docs/models.md):
layers, compress (heads, FFN, 8-bit, depth, with distillation), evaluate (greedy), export-onnx
(verified against PyTorch), latency; and (slow) a 2-trial search and the export of its knee."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .models.hf import tiny_hf_folder

POLICY = """version: 1
depth: {drop: [1]}
rules:
  - pattern: "*.encoder.layers.*.attention.q_proj"
    structured: {ratio: 0.5}
  - pattern: "*.encoder.layers.*.feed_forward.intermediate_dense"
    structured: {ratio: 0.5}
  - global: true
    quant: {bits: 8, kind: linear}
distill: {steps: 2, lr: 1.0e-4}
"""


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asrcompress.cli", *args], capture_output=True, text=True,
                          timeout=900, cwd=cwd)


def ok(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    return p.stdout


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    return tiny_hf_folder(tmp_path_factory.mktemp("hf") / "w2v")


@pytest.mark.slow
def test_layers_compress_evaluate_export_latency(hf_dir, tiny_corpus, tmp_path):
    out = ok(run("layers", "--model", str(hf_dir)))
    assert "wav2vec2.encoder.layers.1.attention.q_proj" in out and "lm_head" in out
    assert "lm_head" in ok(run("inspect", "--model", str(hf_dir)))
    before = {p.name: p.read_bytes() for p in hf_dir.iterdir()}

    (tmp_path / "policy.yaml").write_text(POLICY)
    small = tmp_path / "small"
    ok(run("compress", "--model", str(hf_dir), "--policy", str(tmp_path / "policy.yaml"),
           "--corpus", str(tiny_corpus), "--out", str(small)))
    assert {p.name: p.read_bytes() for p in hf_dir.iterdir()} == before  # the user's folder is untouched
    states = json.loads((small / "compression.json").read_text())["layers"]
    assert states["wav2vec2.encoder.layers.0.attention.q_proj"]["kept"] == 2  # 4 heads -> 2
    assert states["wav2vec2.encoder.layers.0.feed_forward.intermediate_dense"]["kept"] == 32

    for model in (hf_dir, small):
        result = json.loads(ok(run("evaluate", "--model", str(model), "--manifest", str(tiny_corpus / "test.jsonl"),
                                   "--json")))
        assert result["decoder"] == "greedy" and result["utterances"] == 8 and result["wer"] >= 0

    onnx = tmp_path / "small.onnx"
    report = json.loads(ok(run("export-onnx", "--model", str(small), "--out", str(onnx))))
    assert report["input"]["input_name"] == "input_values" and onnx.is_file()
    import onnx as onnx_lib

    graph = onnx_lib.load(str(onnx)).graph
    assert [i.name for i in graph.input] == ["input_values"]
    assert graph.input[0].type.tensor_type.shape.dim[1].dim_param  # a dynamic time axis

    lat = json.loads(ok(run("latency", "--model", str(onnx), "--profile", "host", "--repeats", "2", "--json")))
    assert lat["latency_ms"] > 0 and lat["peak_mem_mb"] > 0
    pred = json.loads(ok(run("latency", "--model", str(small), "--profile", "rpi4", "--json")))
    assert pred["source"] == "predicted" and pred["latency_ms"] > 0


def test_python_api_loads_compresses_and_exports(hf_dir, tmp_path):
    import asrcompress as ac

    model = ac.load_model(hf_dir)
    small, report = ac.compress(model, {"version": 1, "rules": [{"global": True, "quant": {"bits": 8, "kind": "linear"}}]})
    assert report["ratio"] > 2  # 8-bit weights; this tiny model's fp16 biases and norms weigh a lot
    out = ac.export((small, report), out=tmp_path / "m.onnx")
    assert Path(out["path"]).is_file()


@pytest.mark.slow
def test_search_two_trials_and_export_the_knee(hf_dir, tiny_corpus, tmp_path):
    out = ok(run("search", "--space", "hf_ctc", "--model", str(hf_dir), "--corpus", str(tiny_corpus),
                 "--trials", "2", "--dev-utterances", "4", "--kd-utterances", "8", "--study", "hf", "--json", "--strategy", "one-stage",
                 cwd=tmp_path))
    summary = json.loads(out[out.index("{"):])
    assert summary["front"], summary  # at least one complete trial on the front
    ok(run("export", "--study", "hf", "--pick", "knee", "--out", str(tmp_path / "knee"), cwd=tmp_path))
    card = json.loads((tmp_path / "knee" / "model_card.json").read_text())
    assert (tmp_path / "knee" / "model.onnx").is_file() and card
    config = json.loads((tmp_path / "knee" / "model" / "config.json").read_text())
    assert config["architecture"] == "hf_ctc"
