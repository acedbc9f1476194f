"""The exported model's WER matches PyTorch's on the shipped base model (fp32 and int8)."""

import pytest

from asrcompress.compression import Policy, compress_model
from asrcompress.data import load_manifest
from asrcompress.export import OnnxAcousticModel, export_onnx
from asrcompress.models import FeatureSpec, load_model
from asrcompress.objectives import DecoderConfig, evaluate

from ..conftest import BASE_MODEL, REPO


@pytest.mark.parametrize("policy", [None, "int8.yaml", "int4.yaml"])
def test_onnx_wer_matches_pytorch(tiny_corpus, tmp_path, policy):
    base = load_model(BASE_MODEL)
    model, states = base, {}
    if policy:
        model, states, _ = compress_model(base, Policy.load(REPO / "examples" / "policies" / policy))
    path = export_onnx(model, states, tmp_path / "m.onnx")["path"]
    utts = load_manifest(tiny_corpus / "test.jsonl")[0]
    cfg = DecoderConfig(kind="greedy")
    torch_wer = evaluate(model, BASE_MODEL, utts, cfg, workers=1, batch_seconds=0)["wer"]
    onnx_wer = evaluate(OnnxAcousticModel(path, FeatureSpec("log_mel", n_mels=80)), BASE_MODEL, utts, cfg, workers=1)["wer"]
    assert abs(onnx_wer - torch_wer) <= 0.003
