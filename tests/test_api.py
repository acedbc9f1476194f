"""The public Python API (docs/api.md), and examples/api_quickstart.py run end to end."""

import json
import subprocess
import sys

import pytest
import torch

import asrcompress as ac
from asrcompress.errors import UserError

from .compression.models import conformer
from .conftest import REPO, needs_synth


def test_api_names_are_exported():
    assert set(ac.__all__) == {"__version__", "compress", "export", "finalists", "front", "load_model", "propose", "search",
                              "sensitivity"}
    assert all(callable(getattr(ac, n)) for n in ac.__all__ if n != "__version__")
    import asrcompress.search as search_pkg  # the subpackage is the same callable object

    assert ac.search is search_pkg and callable(search_pkg.load_space)


def test_compress_and_export_a_model(tmp_path):
    model = conformer()
    small, report = ac.compress(model, {"version": 1, "rules": [{"global": True, "quant": {"bits": 8}}]})
    assert report["ratio"] > 3 and set(report["states"]) and not report["reverted"]
    assert all(st.bits == 8 for st in report["states"].values())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), conformer().state_dict().values()))
    r = ac.export((small, report), out=tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").is_file() and r["path"] == str(tmp_path / "m.onnx")


def test_compress_that_needs_data_says_so():
    with pytest.raises(UserError, match="distillation recovery needs training data"):
        ac.compress(conformer(), {"version": 1, "rules": [{"global": True, "quant": {"bits": 4}}],
                                  "distill": {"steps": 3}})


@needs_synth
def test_sensitivity_scan_of_a_model_folder(tmp_path, tiny_corpus):
    from asrcompress.models import save_model

    save_model(conformer(), tmp_path / "tiny")
    (tmp_path / "s.yaml").write_text("version: 1\ngroups:\n  - pattern: 'encoder.conformer_layers.0.ffn1.*'\n"
                                     "    per_layer: true\n    bits: [null, 8]\n")
    r = ac.sensitivity(tmp_path / "s.yaml", tmp_path / "tiny", tiny_corpus, utterances=2, cache=tmp_path / "c",
                       check=0, latency=False)
    assert len(r["rows"]) == 2 and all(row["kl"] >= 0 for row in r["rows"]) and r["additivity"] == {"draws": 0}
    assert ac.sensitivity(tmp_path / "s.yaml", tmp_path / "tiny", tiny_corpus, utterances=2, cache=tmp_path / "c",
                          check=0, latency=False)["cached"] == 2


@needs_synth
def test_propose_picks_candidates_without_scoring_them(tmp_path, tiny_corpus):
    from asrcompress.models import save_model

    save_model(conformer(), tmp_path / "tiny")
    (tmp_path / "s.yaml").write_text("version: 1\nname: s\nobjectives: [wer, latency@host]\ngroups:\n"
                                     "  - pattern: 'encoder.conformer_layers.*.ffn1.sequential.1'\n"
                                     "    per_layer: true\n    sparsity: [0.0, 0.5]\n")
    r = ac.propose(tmp_path / "s.yaml", tmp_path / "out", tmp_path / "tiny", tiny_corpus, utterances=2,
                   kd_utterances=0, cache=tmp_path / "c", trials=12, population=4, candidates=2, score=False,
                   storage=f"journal:{tmp_path / 's.journal'}")
    assert r["picks"] and len(r["picks"]) <= 2 and r["candidates"] == [] and r["surrogate"]["trials"] == 12
    assert (tmp_path / "out" / "candidates.json").is_file() and r["scan"]["options"] == 2


@pytest.mark.slow
@needs_synth
def test_api_quickstart_runs(tmp_path, tiny_corpus):
    from asrcompress.models import save_model

    save_model(conformer(), tmp_path / "tiny")
    p = subprocess.run([sys.executable, str(REPO / "examples" / "api_quickstart.py"), "--model", str(tmp_path / "tiny"),
                        "--data", str(tiny_corpus), "--workdir", str(tmp_path / "work"), "--dev-utterances", "4",
                        "--kd-utterances", "8"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "int8:" in p.stdout and "knee: trial" in p.stdout
    card = json.loads((tmp_path / "work" / "knee" / "model_card.json").read_text())
    assert (tmp_path / "work" / "int8.onnx").is_file() and card["study"] == "api_quickstart"
    assert len([line for line in p.stdout.splitlines() if line.startswith("trial ")]) >= 1
