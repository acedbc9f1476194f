"""Hugging Face CTC folders (models/_hf_ctc.py): the adapter contract on each supported type, the
output-length formula, head pruning, the vocabulary, and a bad folder's one-line errors."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch
from hypothesis import given, settings, strategies as st

from asrcompress.compression import Policy, compress_model
from asrcompress.errors import UserError
from asrcompress.models import TOKENS, SEP, adapter_for, encode, folder_vocabulary, load_model
from asrcompress.objectives import DecoderConfig, build_decoder

from .contract import check_adapter
from .hf import VOCAB, tiny_hf_folder


@pytest.fixture(scope="module")
def w2v_dir(tmp_path_factory):
    return tiny_hf_folder(tmp_path_factory.mktemp("hf") / "w2v")


@pytest.fixture(scope="module")
def w2v(w2v_dir):
    return load_model(w2v_dir)


@pytest.mark.parametrize("model_type, overrides", [
    ("wav2vec2", {}),
    # the "large" layout: layer-norm feature encoder (an attention mask), pre-norm encoder layers
    pytest.param("wav2vec2", {"feat_extract_norm": "layer", "do_stable_layer_norm": True}, marks=pytest.mark.slow),
    pytest.param("hubert", {}, marks=pytest.mark.slow),
    ("wavlm", {}),
])
def test_each_supported_type_passes_the_adapter_contract(tmp_path, model_type, overrides):
    model = load_model(tiny_hf_folder(tmp_path / model_type, model_type, **overrides))
    adapter = adapter_for(model)
    assert adapter.name == "hf_ctc" and adapter.features(model).input_name == "input_values"
    blocks = adapter.blocks(model)
    heads = [b for b in blocks if b.kind == "heads"]
    assert len(heads) == (0 if model_type == "wavlm" else 2)  # WavLM's fused attention: no head cutting
    assert len([b for b in blocks if b.kind == "ffn"]) == 2
    check_adapter(model)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=400, max_value=48_000))
def test_output_length_formula(w2v, samples):
    # each conv (k, s) of the feature encoder: L -> (L - k) // s + 1; here (10, 5), (4, 4), (4, 4)
    want = samples
    for k, s in ((10, 5), (4, 4), (4, 4)):
        want = (want - k) // s + 1
    adapter = adapter_for(w2v)
    assert adapter.output_length(w2v, samples) == want
    assert int(w2v._get_feat_extract_output_lengths(torch.tensor(samples))) == want  # Hugging Face's own
    with torch.no_grad():
        lp, lens = adapter.log_probs(w2v, 0.1 * torch.randn(1, samples), torch.tensor([samples]))
    assert lp.shape[1] == lens.item() == want


def test_head_pruning_equals_zeroing_the_heads_out_projection_columns(w2v):
    adapter = adapter_for(w2v)
    attn = w2v.wav2vec2.encoder.layers[1].attention  # 4 heads of width 8
    d_h = attn.head_dim
    policy = Policy.from_dict({"version": 1, "rules": [
        {"name": "wav2vec2.encoder.layers.1.attention.q_proj", "structured": {"ratio": 0.5}}]})
    small, states, _ = compress_model(w2v, policy)
    kept = states["wav2vec2.encoder.layers.1.attention.q_proj"].kept
    pruned = small.wav2vec2.encoder.layers[1].attention
    assert kept == 2 and pruned.num_heads == 2 and pruned.q_proj.weight.shape == (2 * d_h, 32)
    assert pruned.out_proj.weight.shape == (32, 2 * d_h)
    # which heads were kept: the original heads whose q rows the pruned layer holds
    rows = lambda w, h: w[h * d_h:(h + 1) * d_h]  # noqa: E731
    keep = [next(h for h in range(4) if torch.equal(rows(pruned.q_proj.weight, j), rows(attn.q_proj.weight, h)))
            for j in range(2)]
    zeroed = copy.deepcopy(w2v)
    z = zeroed.wav2vec2.encoder.layers[1].attention
    with torch.no_grad():
        for h in set(range(4)) - set(keep):
            z.out_proj.weight[:, h * d_h:(h + 1) * d_h] = 0.0
    wave, lens = 0.1 * torch.randn(2, 16_000), torch.tensor([16_000, 12_000])
    with torch.no_grad():
        a = adapter.log_probs(small, wave, lens)[0]
        b = adapter.log_probs(zeroed, wave, lens)[0]
    assert torch.allclose(a, b, atol=1e-5)


def test_depth_pruning_drops_an_encoder_layer_and_saves(w2v, tmp_path):
    from asrcompress.models import save_model

    policy = Policy.from_dict({"version": 1, "depth": {"drop": [0]}, "rules": []})
    small, states, _ = compress_model(w2v, policy)
    adapter = adapter_for(small)
    assert adapter.depth_blocks(small) == ["wav2vec2.encoder.layers.1"]
    from asrcompress.compression import write_compression

    save_model(small, tmp_path / "m")
    write_compression(tmp_path / "m", tmp_path, policy, states, {})
    back = load_model(tmp_path / "m")
    wave, lens = 0.1 * torch.randn(1, 8_000), torch.tensor([8_000])
    with torch.no_grad():
        assert torch.equal(adapter.log_probs(small, wave, lens)[0], adapter.log_probs(back, wave, lens)[0])


def test_vocabulary_is_the_tokenizers_and_greedy_spells_lower_case_words(w2v, w2v_dir):
    vocab = folder_vocabulary(w2v_dir)
    assert vocab == adapter_for(w2v).vocabulary(w2v)
    assert vocab.blank == VOCAB["<pad>"] and vocab.delimiter == "|" and vocab.characters
    ids = [VOCAB[c] for c in "HI"] + [VOCAB["|"]] + [VOCAB["<unk>"]] + [VOCAB[c] for c in "YOU'D"]
    assert vocab.text(ids) == "hi you'd"
    # greedy: repeats merge, blanks split them
    frames = [VOCAB["H"], VOCAB["H"], 0, VOCAB["I"], VOCAB["|"], VOCAB["O"], 0, VOCAB["O"]]
    lp = torch.full((1, len(frames), len(VOCAB)), -10.0)
    lp[0, torch.arange(len(frames)), torch.tensor(frames)] = 0.0
    assert vocab.greedy(lp, torch.tensor([len(frames)])) == ["hi oo"]
    assert build_decoder(w2v_dir, DecoderConfig(kind="greedy"))(lp[0]) == "hi oo"


def test_training_targets_map_into_the_models_vocabulary(w2v):
    from asrcompress.compression._distill import ctc_targets

    remap, blank = ctc_targets(w2v)
    assert blank == 0
    (got,) = remap([torch.tensor(encode("it's a test"))])
    assert adapter_for(w2v).vocabulary(w2v).text(got.tolist()) == "it's a test"
    ours, blank = ctc_targets(torch.nn.Linear(2, 2))  # no family: the built-in ids as they are
    assert blank == 0 and torch.equal(ours([torch.tensor([3, 4])])[0], torch.tensor([3, 4]))
    assert len(TOKENS) == 29 and SEP == "|"


def test_hubert_distils_with_its_own_vocabulary(tmp_path):
    from asrcompress.compression import DistillConfig, distill

    teacher = load_model(tiny_hf_folder(tmp_path / "h", "hubert"))
    student, states, _ = compress_model(teacher, Policy.from_dict({"version": 1, "rules": [
        {"pattern": "*.feed_forward.intermediate_dense", "structured": {"ratio": 0.5}}]}))
    g = torch.Generator().manual_seed(0)
    waves = [(3000 * torch.randn(16_000, generator=g)).to(torch.int16).numpy() for _ in range(4)]
    targets = [torch.tensor(encode("hello there")) for _ in waves]
    out = distill(student, teacher, states, waves, targets, DistillConfig(steps=3, lr=1e-4, alpha=0.5))
    assert out["steps"] == 3 and all(map(lambda x: x == x, [out["loss_first"], out["loss_last"]]))


# -- a bad folder: one error naming the file

def _error(fn) -> str:
    with pytest.raises(UserError) as e:
        fn()
    return str(e.value)


def test_a_folder_without_vocab_json(tmp_path, w2v_dir):
    d = tmp_path / "m"
    shutil.copytree(w2v_dir, d)
    (d / "vocab.json").unlink()
    assert str(d / "vocab.json") in _error(lambda: load_model(d))


def test_an_unsupported_model_type(tmp_path, w2v_dir):
    d = tmp_path / "m"
    shutil.copytree(w2v_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["model_type"] = "bert"
    (d / "config.json").write_text(json.dumps(cfg))
    msg = _error(lambda: load_model(d))
    assert str(d / "config.json") in msg and "'bert'" in msg and "wav2vec2" in msg


def test_a_pickle_checkpoint_needs_trust(tmp_path, w2v_dir):
    from safetensors.torch import load_file

    d = tmp_path / "m"
    shutil.copytree(w2v_dir, d)
    torch.save(load_file(str(d / "model.safetensors")), d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()
    msg = _error(lambda: load_model(d))
    assert str(d / "pytorch_model.bin") in msg and "--trust-pickle" in msg
    model = load_model(d, trust_pickle=True)  # read with torch.load(weights_only=True)
    assert adapter_for(model).name == "hf_ctc"


def test_a_word_piece_vocabulary_decodes_greedy_but_refuses_beam_search(tmp_path):
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, "\u2581the": 5, "\u2581a": 6, "ing": 7, "s": 8}
    d = tiny_hf_folder(tmp_path / "bpe", vocab=vocab)
    model = load_model(d)
    v = adapter_for(model).vocabulary(model)
    assert not v.characters and v.text([5, 7, 8, 6]) == "theings a"
    msg = _error(lambda: build_decoder(d, DecoderConfig(kind="beam_lm")))
    assert str(d / "vocab.json") in msg and "greedy" in msg
    assert build_decoder(d, DecoderConfig(kind="greedy"))(torch.zeros(3, len(vocab))) == ""


def test_without_transformers_the_error_names_the_extra(monkeypatch, w2v_dir):
    import builtins

    real = builtins.__import__

    def no_transformers(name, *a, **kw):
        if name == "transformers" or name.startswith("transformers."):
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_transformers)
    assert "asrcompress[hf]" in _error(lambda: load_model(w2v_dir))


def test_feature_encoder_channel_pruning_equals_zeroing_the_next_convs_inputs(w2v):
    # group-norm layout: conv0 -> per-channel GroupNorm -> GELU -> conv1, so dropping conv0's
    # channels is exactly conv1 reading zeros from them
    adapter = adapter_for(w2v)
    name = "wav2vec2.feature_extractor.conv_layers.0.conv"
    small, states, _ = compress_model(w2v, Policy.from_dict({"version": 1, "rules": [
        {"name": name, "structured": {"ratio": 0.25}}]}))
    assert states[name].kept == 16 - round(0.25 * 16)
    layers = small.wav2vec2.feature_extractor.conv_layers
    assert layers[0].conv.out_channels == 12 and layers[0].layer_norm.num_channels == 12
    assert layers[1].conv.in_channels == 12
    w0 = w2v.wav2vec2.feature_extractor.conv_layers[0].conv.weight
    kept = [next(c for c in range(16) if torch.equal(layers[0].conv.weight[j], w0[c])) for j in range(12)]
    zeroed = copy.deepcopy(w2v)
    with torch.no_grad():
        zeroed.wav2vec2.feature_extractor.conv_layers[1].conv.weight[:, sorted(set(range(16)) - set(kept))] = 0.0
    wave, lens = 0.1 * torch.randn(2, 16_000), torch.tensor([16_000, 12_000])
    with torch.no_grad():
        assert torch.allclose(adapter.log_probs(small, wave, lens)[0], adapter.log_probs(zeroed, wave, lens)[0],
                              atol=1e-5)
    # the last conv layer's channels also shrink the feature projection's LayerNorm and Linear
    last = "wav2vec2.feature_extractor.conv_layers.2.conv"
    small, _, _ = compress_model(w2v, Policy.from_dict({"version": 1, "rules": [
        {"name": last, "structured": {"ratio": 0.5}}]}))
    proj = small.wav2vec2.feature_projection
    assert proj.layer_norm.normalized_shape == (8,) and proj.projection.in_features == 8


def test_tucker_on_a_feature_encoder_conv_exports_and_reloads(w2v, tmp_path):
    from asrcompress.compression import write_compression
    from asrcompress.compression._layers import TuckerConv2d
    from asrcompress.export import export_onnx
    from asrcompress.models import save_model

    name = "wav2vec2.feature_extractor.conv_layers.1.conv"
    policy = Policy.from_dict({"version": 1, "rules": [{"global": True, "tucker": {"rank_fraction": 0.5}}]})
    small, states, skipped = compress_model(w2v, policy)
    assert set(states) == {name, "wav2vec2.feature_extractor.conv_layers.2.conv"}  # conv 0 has one input channel
    assert isinstance(small.get_submodule(name), TuckerConv2d) and small.get_submodule(name).kind == "Conv1d"
    export_onnx(small, states, tmp_path / "m.onnx")  # checked against PyTorch inside
    save_model(small, tmp_path / "m")
    write_compression(tmp_path / "m", tmp_path, policy, states, {})
    back = load_model(tmp_path / "m")
    wave, lens = 0.1 * torch.randn(1, 8_000), torch.tensor([8_000])
    adapter = adapter_for(small)
    with torch.no_grad():
        assert torch.equal(adapter.log_probs(small, wave, lens)[0], adapter.log_probs(back, wave, lens)[0])


def _hf_posteriors(text: str, ambiguous: dict[int, dict[str, float]] | None = None) -> torch.Tensor:
    """Frames spelling `text` in the upper-case Hugging Face vocabulary, a blank after each
    character; each frame {token: prob}, the rest of the mass spread over the other tokens."""
    import math

    frames = []
    for i, ch in enumerate(text.upper().replace(" ", "|")):
        frames += [(ambiguous or {}).get(i, {ch: 0.97}), {"<pad>": 0.97}]
    frames.append({"|": 0.97})
    tokens = list(VOCAB)
    rows = []
    for f in frames:
        rest = (1 - sum(f.values())) / (len(tokens) - len(f))
        rows.append([math.log(f.get(t, rest)) for t in tokens])
    return torch.tensor(rows, dtype=torch.float32)


@pytest.mark.slow
def test_finalize_builds_beam_decoders_in_the_models_own_vocabulary(w2v_dir, tiny_corpus, tmp_path):
    import subprocess
    import sys

    text = tmp_path / "lm.txt"
    text.write_text("Set a timer for ten minutes.\nset a timer for two minutes\n" * 3 + "go far away\n")
    out = tmp_path / "final"
    p = subprocess.run([sys.executable, "-m", "asrcompress.cli", "finalize", "--model", str(w2v_dir), "--corpus",
                        str(tiny_corpus), "--lm-text", str(text), "--out", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "hf_ctc" and config["decoder"]["kind"] == "beam_char"
    assert "TIMER\tT I M E R |" not in (out / "lexicon.txt").read_text()
    assert "timer\tT I M E R |" in (out / "lexicon.txt").read_text()  # spelled in the model's tokens
    card = json.loads((out / "model_card.json").read_text())
    assert {"wer", "greedy_wer"} <= set(card) and card["architecture"].startswith("hf_ctc")
    # 'timer' with the I slightly less likely than a Y: greedy hears "tymer"; both beams, with
    # the LMs built from the user's text, put the I back
    lp = _hf_posteriors("set a timer", ambiguous={7: {"Y": 0.5, "I": 0.45}})
    assert build_decoder(out, DecoderConfig(kind="greedy"))(lp) == "set a tymer"
    assert build_decoder(out, DecoderConfig(kind="beam_lm", lm_weight=1.0))(lp) == "set a timer"
    assert build_decoder(out, DecoderConfig(kind="beam_char", lm_weight=1.0))(lp) == "set a timer"
    assert sorted(p.name for p in w2v_dir.iterdir()) == sorted(  # the user's folder: nothing added
        ["config.json", "model.safetensors", "vocab.json", "tokenizer_config.json", "processor_config.json"])


def test_finalize_will_not_write_into_a_hugging_face_folder(w2v_dir, tiny_corpus):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "asrcompress.cli", "finalize", "--model", str(w2v_dir), "--corpus",
                        str(tiny_corpus)], capture_output=True, text=True)
    assert p.returncode == 2 and "--out" in p.stderr and "Traceback" not in p.stderr


def test_the_vocabulary_fits_the_ctc_head(tmp_path):
    # a tokenizer that adds <s> and </s> past a 30-output head: the head never emits them
    vocab = {k: v for k, v in VOCAB.items() if k not in ("<s>", "</s>")}
    vocab = {t: i for i, t in enumerate(vocab)}
    d = tiny_hf_folder(tmp_path / "m", vocab=vocab)
    v = folder_vocabulary(d)
    assert len(v.tokens) == len(vocab) and "<s>" not in v.tokens
    assert v == adapter_for(load_model(d)).vocabulary(load_model(d))


def test_a_feature_extractor_not_at_16_khz_names_its_file(tmp_path, w2v_dir):
    d = tmp_path / "m"
    shutil.copytree(w2v_dir, d)
    cfg = json.loads((d / "processor_config.json").read_text())  # transformers 5's processor file
    cfg["feature_extractor"]["sampling_rate"] = 8000
    (d / "processor_config.json").write_text(json.dumps(cfg))
    msg = _error(lambda: load_model(d))
    assert str(d / "processor_config.json") in msg and "8000" in msg
