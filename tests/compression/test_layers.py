import pytest

from asrcompress.compression import discover_layers

from .models import FAMILIES


@pytest.mark.parametrize("family", list(FAMILIES))
def test_discovers_linear_conv_attention_and_lstm_weights(family):
    model = FAMILIES[family]()
    layers = discover_layers(model)
    kinds = {l.kind for l in layers}
    names = [l.name for l in layers]
    assert len(names) == len(set(names))
    assert "Linear" in kinds
    if family == "conformer":
        assert {"Conv1d", "Conv2d", "MultiheadAttention"} <= kinds
        assert "encoder.conformer_layers.0.self_attn.in_proj" in names
        assert "encoder.conformer_layers.0.self_attn.out_proj" in names
    if family == "wav2vec2":
        assert any(n.endswith("attention.q_proj") for n in names)
        assert not any("pos_conv" in n for n in names)  # weight-normed: derived, not stored
    if family == "lstm":
        assert {"lstm.weight_ih_l0", "lstm.weight_hh_l1"} <= set(names)
    for l in layers:
        assert l.params == l.out_features * l.in_features
