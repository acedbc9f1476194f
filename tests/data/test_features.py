import torch
from hypothesis import given, settings, strategies as st

from asrcompress.data import LogMel, num_frames


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=400, max_value=48000), min_size=1, max_size=4))
def test_logmel_shape_formula(lengths):
    # (N, S) samples -> (N, 1 + S // 160, 80)
    lens = torch.tensor(lengths)
    wave = torch.randn(len(lengths), max(lengths))
    feats, frames = LogMel()(wave, lens)
    assert feats.shape == (len(lengths), num_frames(max(lengths)), 80)
    assert frames.tolist() == [num_frames(n) for n in lengths]
    # padding frames are zeroed, real frames are normalised per utterance
    for i, f in enumerate(frames.tolist()):
        assert torch.all(feats[i, f:] == 0)
        assert abs(float(feats[i, :f].mean())) < 1e-3


def test_logmel_is_gain_invariant():
    # seeded: an unlucky draw puts a bin near the log floor, where gain is not removed exactly
    x = torch.randn(1, 16000, generator=torch.Generator().manual_seed(0))
    lens = torch.tensor([16000])
    a, _ = LogMel()(x, lens)
    b, _ = LogMel()(x * 0.1, lens)
    assert torch.allclose(a, b, atol=1e-2)
