"""Tucker-2 of 2-D convs: exact at full rank, within the HOSVD bound below it, and the
multiply-add count of the exported graph follows the formula."""

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from asrcompress.compression import Policy, compress_model
from asrcompress.compression._layers import TuckerConv2d
from asrcompress.compression._tucker import hosvd
from asrcompress.models import log_probs

from .models import FAMILIES


def _rebuild(t) -> torch.Tensor:
    reduce, core, expand = t
    return torch.einsum("rskl,or,is->oikl", core, expand[:, :, 0, 0], reduce[:, :, 0, 0].T)


@settings(max_examples=25, deadline=None)
@given(st.integers(4, 24), st.integers(4, 24), st.sampled_from([1, 3, 5]), st.floats(0.2, 1.0))
def test_reconstruction_is_exact_at_full_rank_and_within_the_hosvd_bound_below(c_out, c_in, k, fraction):
    w = torch.randn(c_out, c_in, k, k, dtype=torch.float64, generator=torch.Generator().manual_seed(c_out * c_in + k))
    assert torch.allclose(_rebuild(hosvd(w, c_out, c_in)), w, atol=1e-9)
    r_out, r_in = max(1, round(fraction * c_out)), max(1, round(fraction * c_in))
    err = float(((_rebuild(hosvd(w, r_out, r_in)) - w) ** 2).sum())
    s1 = torch.linalg.svdvals(w.reshape(c_out, -1))
    s2 = torch.linalg.svdvals(w.transpose(0, 1).reshape(c_in, -1))
    bound = float((s1[r_out:] ** 2).sum() + (s2[r_in:] ** 2).sum())
    assert err <= bound * (1 + 1e-9) + 1e-12


def test_the_multiply_add_count_follows_the_formula():
    """C_in r_in H W + r_in r_out k^2 H' W' + r_out C_out H' W', counted on the three convs as they
    run. (ONNX Runtime's NCHWc layout pads channel counts to its block of 8: ranks that are
    multiples of 8 waste none of it.)"""
    conv = nn.Conv2d(24, 32, 3, stride=2)
    m = TuckerConv2d(conv, 16, 8)
    macs = []
    for c in m.factors():
        c.register_forward_hook(lambda mod, a, out: macs.append(
            out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]))
    m(torch.randn(1, 24, 41, 21))
    macs = sum(macs)
    h, w, h2, w2 = 41, 21, 20, 10
    assert macs == 24 * 8 * h * w + 8 * 16 * 9 * h2 * w2 + 16 * 32 * h2 * w2
    assert macs < 32 * 24 * 9 * h2 * w2  # fewer than the conv it replaces


def test_tucker_replaces_the_front_end_conv_and_the_model_still_runs():
    base = FAMILIES["conformer"]()
    policy = Policy.from_dict({"version": 1, "rules": [{"global": True, "tucker": {"rank_fraction": 0.5}}]})
    small, states, skipped = compress_model(base, policy)
    assert set(states) == {"subsampling.conv2"} and isinstance(small.subsampling.conv2, TuckerConv2d)
    assert any("subsampling.conv1" in s for s in skipped)  # one input channel: nothing to reduce
    wave = torch.randn(1, 8000) * 0.1
    with torch.no_grad():
        assert log_probs(small, wave, torch.tensor([8000]))[0].shape == log_probs(base, wave, torch.tensor([8000]))[0].shape


def test_ranks_above_the_channels_are_refused():
    from asrcompress.compression import PolicyError

    with pytest.raises(PolicyError, match="tucker.ranks=\\[64, 8\\] exceed"):
        compress_model(FAMILIES["conformer"](), Policy.from_dict(
            {"version": 1, "rules": [{"name": "subsampling.conv2", "tucker": {"ranks": [64, 8]}}]}))


@settings(max_examples=20, deadline=None)
@given(st.integers(4, 24), st.integers(4, 24), st.sampled_from([2, 3, 10]), st.floats(0.2, 1.0))
def test_a_1d_conv_meets_the_same_bounds(c_out, c_in, k, fraction):
    w = torch.randn(c_out, c_in, k, dtype=torch.float64, generator=torch.Generator().manual_seed(c_out + c_in * k))
    reduce, core, expand = hosvd(w, c_out, c_in)
    # a mode's rank is at most its unfolding's other side: C_in <= C_out k, C_out <= C_in k
    assert reduce.shape == (min(c_in, c_out * k), c_in, 1) and expand.shape == (c_out, min(c_out, c_in * k), 1)
    rebuild = lambda t: torch.einsum("rsk,or,is->oik", t[1], t[2][:, :, 0], t[0][:, :, 0].T)  # noqa: E731
    assert torch.allclose(rebuild((reduce, core, expand)), w, atol=1e-9)
    r_out, r_in = max(1, round(fraction * c_out)), max(1, round(fraction * c_in))
    err = float(((rebuild(hosvd(w, r_out, r_in)) - w) ** 2).sum())
    s1 = torch.linalg.svdvals(w.reshape(c_out, -1))
    s2 = torch.linalg.svdvals(w.transpose(0, 1).reshape(c_in, -1))
    assert err <= float((s1[r_out:] ** 2).sum() + (s2[r_in:] ** 2).sum()) * (1 + 1e-9) + 1e-12


def test_a_1d_tucker_conv_runs_as_the_conv_at_full_rank_and_counts_the_formula():
    """(N, C_in, T) -> (N, r_in, T) -> (N, r_out, T') -> (N, C_out, T'): C_in r_in T + r_in r_out k T' + r_out C_out T'."""
    conv = nn.Conv1d(16, 24, 4, stride=4)
    full = TuckerConv2d(conv, 24, 16)
    assert full.kind == "Conv1d" and full.shape == (24, 16, 4)
    reduce, core, expand = hosvd(conv.weight, 24, 16)
    with torch.no_grad():
        full.reduce.weight.copy_(reduce)
        full.core.weight.copy_(core)
        full.expand.weight.copy_(expand)
        full.expand.bias.copy_(conv.bias)
    x = torch.randn(2, 16, 400)
    with torch.no_grad():
        assert torch.allclose(full(x), conv(x), atol=1e-4)
    m = TuckerConv2d(conv, 8, 8)
    macs = []
    for c in m.factors():
        c.register_forward_hook(lambda mod, a, out: macs.append(out.numel() * mod.in_channels * mod.kernel_size[0]))
    m(torch.randn(1, 16, 400))
    assert sum(macs) == 16 * 8 * 400 + 8 * 8 * 4 * 100 + 8 * 24 * 100
