"""The depthwise-separable approximation of 2-D convs: exact at full multiplier, the
Eckart-Young error below it, least squares on calibration patches that never raises the output
error and beats the weight-only fit on held-out patches, and the multiply-add formula."""

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from asrcompress.compression import Calibration, Policy, PolicyError, compress_model
from asrcompress.compression._layers import SeparableConv2d
from asrcompress.compression._separable import dense, fit_separable, output_error, svd_separable

from .contract import kd_data
from .models import FAMILIES


def _weight(c_out: int, c_in: int, k: int) -> torch.Tensor:
    return torch.randn(c_out, c_in, k, k, dtype=torch.float64, generator=torch.Generator().manual_seed(c_out * c_in + k))


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 20), st.integers(2, 12), st.sampled_from([2, 3, 5]), st.integers(1, 6))
def test_exact_at_full_multiplier_and_the_eckart_young_error_below(c_out, c_in, k, m):
    w = _weight(c_out, c_in, k)
    full = min(c_out, k * k)
    assert torch.allclose(dense(*svd_separable(w, full), c_in), w, atol=1e-9)
    err = float(((dense(*svd_separable(w, m), c_in) - w) ** 2).sum())
    sigma = torch.linalg.svdvals(w.transpose(0, 1).reshape(c_in, c_out, k * k))  # (C_in, min(C_out, k k))
    assert err == pytest.approx(float((sigma[:, m:] ** 2).sum()), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("m", [1, 2])
def test_the_module_computes_the_dense_weight_it_stands_for(m):
    conv = nn.Conv2d(6, 10, 3, stride=2, padding=1).double()
    sep = SeparableConv2d(conv, m).double()
    dw, pw = svd_separable(conv.weight, m)
    sep.depthwise.weight.data.copy_(dw)
    sep.pointwise.weight.data.copy_(pw)
    sep.pointwise.bias.data.copy_(conv.bias)
    x = torch.randn(2, 6, 13, 9, dtype=torch.float64)
    want = nn.functional.conv2d(x, dense(dw, pw, 6), conv.bias, stride=2, padding=1)
    assert torch.allclose(sep(x), want, atol=1e-12)
    assert sep.shape == (10, 6, 3, 3)


def _patches(n: int, dim: int, seed: int) -> torch.Tensor:
    """Correlated, non-negative patches (as after a ReLU): rows (n, dim)."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(dim, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(7)) / dim ** 0.5
    return torch.relu(torch.randn(n, dim, dtype=torch.float64, generator=g) @ mix + 0.3)


def test_least_squares_never_raises_the_error_and_beats_the_weight_fit_on_held_out_patches():
    w = _weight(16, 8, 3)
    fit, held_out = _patches(4000, 72, 1), _patches(4000, 72, 2)
    s_fit, s_test = fit.T @ fit / 4000, held_out.T @ held_out / 4000
    dw, pw, errors = fit_separable(w, 1, s_fit)
    assert all(b <= a * (1 + 1e-9) for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.9 * errors[0]
    svd_err = output_error(w, dense(*svd_separable(w, 1), 8), s_test)
    assert output_error(w, dense(dw, pw, 8), s_test) < 0.9 * svd_err


def test_the_multiply_add_count_follows_the_formula():
    """m C_in k^2 H' W' + m C_in C_out H' W', counted on the two convs as they run."""
    conv = nn.Conv2d(24, 32, 3, stride=2)
    m = SeparableConv2d(conv, 2)
    macs = []
    for c in m.factors():
        c.register_forward_hook(lambda mod, a, out: macs.append(
            out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]))
    m(torch.randn(1, 24, 41, 21))
    h2, w2 = 20, 10
    assert sum(macs) == 2 * 24 * 9 * h2 * w2 + 2 * 24 * 32 * h2 * w2
    assert sum(macs) < 32 * 24 * 9 * h2 * w2


def test_the_front_end_conv_is_replaced_and_fitted_on_calibration_audio():
    base = FAMILIES["conformer"]()
    policy = Policy.from_dict({"version": 1, "rules": [{"global": True, "separable": {"multiplier": 1}}]})
    with pytest.raises(PolicyError, match="separable.fit activations needs calibration audio"):
        compress_model(base, policy)
    small, states, skipped = compress_model(base, policy, calibration=Calibration(kd_data()[0]))
    assert set(states) == {"subsampling.conv2"} and isinstance(small.subsampling.conv2, SeparableConv2d)
    record = states["subsampling.conv2"].extra["separable"]
    assert record["fit"] == "activations" and record["output_error"][1] <= record["output_error"][0]
    assert any("subsampling.conv1" in s for s in skipped)  # one input channel: separable already


def test_a_multiplier_that_saves_no_multiply_adds_is_refused():
    conv = FAMILIES["conformer"]().subsampling.conv2
    too_many = conv.out_channels * 9 // (conv.out_channels + 9) + 1
    with pytest.raises(PolicyError, match=f"separable.multiplier={too_many} does no fewer multiply-adds"):
        compress_model(FAMILIES["conformer"](), Policy.from_dict(
            {"version": 1, "rules": [{"name": "subsampling.conv2", "separable": {"multiplier": too_many,
                                                                                 "fit": "weights"}}]}))


def test_two_methods_that_replace_one_layer_are_refused_in_a_policy_and_in_a_space(tmp_path):
    """Tucker-2 and the separable form each put their own factors in the layer's place."""
    from asrcompress.errors import UserError
    from asrcompress.search import load_space

    both = {"name": "subsampling.conv2", "tucker": {"rank_fraction": 0.5},
            "separable": {"multiplier": 1, "fit": "weights"}}
    with pytest.raises(PolicyError, match="layer subsampling.conv2: tucker and separable each replace the layer"):
        compress_model(FAMILIES["conformer"](), Policy.from_dict({"version": 1, "rules": [both]}))
    space = tmp_path / "s.yaml"
    space.write_text("version: 1\ngroups:\n  - name: subsampling.conv2\n    separable: [null, 1]\n"
                     "    tucker_fraction: [null, 0.5]\n")
    with pytest.raises(UserError, match=r"groups\[0\]: 'tucker_fraction' choice 0.5 with 'separable' choice 1"):
        load_space(space)
    space.write_text("version: 1\ngroups:\n  - name: subsampling.conv2\n    separable: [null, 1, 2]\n")
    assert load_space(space).groups[0].choices == {"separable": [None, 1, 2]}
