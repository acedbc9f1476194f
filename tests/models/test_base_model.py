"""The shipped base model: its files, its card, and that its figures hold on fresh speech."""

import json
import subprocess
import sys

import pytest

from asrcompress.data import build_corpus, load_manifest
from asrcompress.models import CARD, load_model
from asrcompress.objectives import DecoderConfig, evaluate

from ..conftest import BASE_MODEL, needs_synth


def card() -> dict:
    return json.loads((BASE_MODEL / CARD).read_text())


def test_shipped_folder_is_complete_and_under_40_mb():
    names = {p.name for p in BASE_MODEL.iterdir()}
    assert {"model.safetensors", "config.json", "model_card.json", "lexicon.txt", "lm.arpa"} <= names
    assert sum(p.stat().st_size for p in BASE_MODEL.iterdir()) < 40e6


def test_card_reports_what_the_issue_requires():
    c = card()
    for key in ("architecture", "parameters", "corpus", "training_command", "training_time_seconds"):
        assert c[key], key
    assert set(c["wer"]) == {"dev", "test"} and set(c["cer"]) == {"dev", "test"}
    assert set(c["greedy_wer"]) == {"dev", "test"}
    assert c["parameters"] == load_model(BASE_MODEL).num_parameters()
    assert c["wer"]["test"] <= 0.15


def test_decodes_held_out_voices(tiny_corpus):
    utts, _ = load_manifest(tiny_corpus / "test.jsonl")
    cfg = DecoderConfig.from_dict(json.loads((BASE_MODEL / "config.json").read_text())["decoder"])
    result = evaluate(load_model(BASE_MODEL), BASE_MODEL, utts, cfg, workers=2)
    assert result["wer"] < 0.3


@pytest.mark.slow
@needs_synth
def test_fresh_small_test_split_matches_card_within_3_points(tmp_path):
    # Acceptance: a small test split synthesised with a seed the model never saw.
    build_corpus(tmp_path, seed=2026, size="small")
    p = subprocess.run([sys.executable, "-m", "asrcompress.cli", "evaluate", "--model", str(BASE_MODEL),
                        "--manifest", str(tmp_path / "test.jsonl"), "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert abs(json.loads(p.stdout)["wer"] - card()["wer"]["test"]) <= 0.03
