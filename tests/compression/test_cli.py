import json

import torch

from asrcompress.models import load_model

from ..conftest import BASE_MODEL, REPO
from ..test_cli import assert_one_line_error, run


def test_layers_and_inspect_json_on_the_base_model():
    p = run("layers", "--model", str(BASE_MODEL), "--json")
    layers = json.loads(p.stdout)
    assert len(layers) == 76 and layers[0]["name"] == "subsampling.conv1"
    p = run("inspect", "--model", str(BASE_MODEL), "--json")
    report = json.loads(p.stdout)
    assert report["ratio"] == 1.0 and report["total_bytes"] == report["fp32_bytes"]
    assert {"name", "params", "nonzeros", "bits", "rank", "clusters", "format", "bytes"} <= set(report["layers"][0])


def test_compress_writes_a_folder_that_loads_back_exactly(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nrules:\n  - global: true\n    quant: {bits: 4}\n"
                      "  - pattern: 'encoder.*.ffn1.*'\n    lowrank: {rank: 40}\n    prune: {sparsity: 0.4}\n")
    out = tmp_path / "c"
    p = run("compress", "--model", str(BASE_MODEL), "--policy", str(policy), "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert {"model.safetensors", "config.json", "compression.json", "lexicon.txt", "lm.arpa"} <= {
        f.name for f in out.iterdir()}
    report = json.loads(run("inspect", "--model", str(out), "--json").stdout)
    assert report["ratio"] > 6
    ffn = next(l for l in report["layers"] if l["name"] == "encoder.conformer_layers.0.ffn1.sequential.1")
    assert ffn["rank"] == 40 and ffn["bits"] == 4
    # same outputs after a save/load round trip as straight after compression
    from asrcompress.compression import Policy, compress_model

    direct, _, _ = compress_model(load_model(BASE_MODEL), Policy.load(policy))
    back = load_model(out)
    wave, lens = torch.randn(1, 16000), torch.tensor([16000])
    with torch.no_grad():
        assert torch.equal(direct.log_probs(wave, lens)[0], back.log_probs(wave, lens)[0])


def test_bad_policy_and_missing_corpus_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - pattern: 'decoder.*'\n    quant: {bits: 8}\n")
    assert_one_line_error(run("compress", "--model", str(BASE_MODEL), "--policy", str(bad), "--out",
                              str(tmp_path / "o")), "bad.yaml", "rule 0", "matches no layer")
    assert not (tmp_path / "o").exists()
    kd = REPO / "examples" / "policies" / "int4.yaml"
    assert_one_line_error(run("compress", "--model", str(BASE_MODEL), "--policy", str(kd), "--out",
                              str(tmp_path / "o")), "--corpus")
    assert_one_line_error(run("compress", "--model", str(BASE_MODEL), "--policy", str(kd), "--out",
                              str(tmp_path / "o"), "--kd-alpha", "3"), "distill.alpha=3")


def test_structured_policy_saves_and_loads_back_exactly(tmp_path):
    out = tmp_path / "s"
    p = run("compress", "--model", str(BASE_MODEL), "--policy",
            str(REPO / "examples" / "policies" / "structured25_lowrank50.yaml"), "--out", str(out),
            "--finetune-steps", "0")
    assert p.returncode == 0, p.stderr
    report = json.loads(run("inspect", "--model", str(out), "--json").stdout)
    assert report["fp32_bytes"] == 17898164 and report["ratio"] > 1.3
    from asrcompress.compression import Policy, compress_model

    policy = Policy.load(REPO / "examples" / "policies" / "structured25_lowrank50.yaml")
    direct, _, _ = compress_model(load_model(BASE_MODEL), policy)
    wave, lens = torch.randn(1, 16000), torch.tensor([16000])
    with torch.no_grad():
        assert torch.equal(direct.log_probs(wave, lens)[0],
                           load_model(out).log_probs(wave, lens)[0])


def test_head_pruned_model_saves_and_loads_back_exactly(tmp_path):
    policy = tmp_path / "heads.yaml"
    policy.write_text("version: 1\nrules:\n"
                      "  - pattern: 'encoder.*.self_attn.in_proj'\n"
                      "    structured: {ratio: 0.5}\n    quant: {bits: 8}\n")
    out = tmp_path / "h"
    p = run("compress", "--model", str(BASE_MODEL), "--policy", str(policy), "--out", str(out))
    assert p.returncode == 0, p.stderr
    model = load_model(out)
    attn = model.encoder.conformer_layers[0].self_attn
    assert attn.num_heads == 2 and attn.in_proj_weight.shape == (3 * 2 * 36, 144)
    report = json.loads(run("inspect", "--model", str(out), "--json").stdout)
    row = next(r for r in report["layers"] if r["name"] == "encoder.conformer_layers.0.self_attn.in_proj")
    assert row["params"] == 3 * 72 * 144 and row["bits"] == 8
    from asrcompress.compression import Policy, compress_model

    direct, _, _ = compress_model(load_model(BASE_MODEL), Policy.load(policy))
    wave, lens = torch.randn(1, 16000), torch.tensor([16000])
    with torch.no_grad():
        assert torch.equal(direct.log_probs(wave, lens)[0], model.log_probs(wave, lens)[0])
