import pytest
import torch
from hypothesis import given, settings, strategies as st

from asrcompress.data import num_frames
from asrcompress.models import ConformerCTC, ConvSubsampling, ModelConfig, load_model, save_model, subsampled_length

TINY = ModelConfig(d_model=32, num_layers=1, num_heads=2, ffn_dim=64, conv_kernel=7)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=7, max_value=400), st.sampled_from([40, 80]), st.integers(1, 3))
def test_subsampling_shape_formula(t, n_mels, n):
    # (N, T, F) -> (N, ((T-1)//2 - 1)//2, d)
    sub = ConvSubsampling(n_mels, 16)
    y, lens = sub(torch.randn(n, t, n_mels), torch.full((n,), t))
    assert y.shape == (n, subsampled_length(t), 16)
    assert lens.tolist() == [subsampled_length(t)] * n


def test_model_output_shapes_follow_formulas():
    model = ConformerCTC(TINY).eval()
    samples = [16000, 9000]
    wave = torch.randn(2, 16000)
    lp, lens = model.log_probs(wave, torch.tensor(samples))
    assert lp.shape == (2, subsampled_length(num_frames(16000)), TINY.vocab_size)
    assert lens.tolist() == [subsampled_length(num_frames(s)) for s in samples]
    assert torch.allclose(lp.exp().sum(-1), torch.ones(lp.shape[:2]), atol=1e-5)


def test_default_size_is_within_3_to_8_million_parameters():
    assert 3e6 <= ConformerCTC(ModelConfig()).num_parameters() <= 8e6


def test_encoder_layers_are_standard_modules():
    # Later compression passes rely on plain nn.Linear / nn.Conv1d in the encoder.
    model = ConformerCTC(TINY)
    kinds = {type(m) for m in model.encoder.modules()}
    assert torch.nn.Linear in kinds and torch.nn.Conv1d in kinds


def test_save_load_gives_identical_outputs(tmp_path):
    model = ConformerCTC(TINY).eval()
    save_model(model, tmp_path / "m", decoder={"kind": "greedy"})
    back = load_model(tmp_path / "m")
    wave, lens = torch.randn(1, 8000), torch.tensor([8000])
    with torch.no_grad():
        assert torch.equal(model.log_probs(wave, lens)[0], back.log_probs(wave, lens)[0])


def test_config_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown model config fields"):
        ModelConfig.from_dict({"d_model": 8, "wings": 2})
