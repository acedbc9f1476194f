"""Block-wise scales and GPTQ rounding: the grid, the error GPTQ saves, the export's recovery of it."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from asrcompress.compression import Policy, PolicyError, compress_model
from asrcompress.compression._gptq import gptq
from asrcompress.compression._quant import linear_fake_quant
from asrcompress.export._kernels import as_grid

from .models import FAMILIES


def _layer(seed: int, out: int = 48, inp: int = 160, n: int = 1500):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, inp, generator=g)
    mix = torch.randn(inp, inp, generator=g) / inp ** 0.5  # correlated inputs, as real activations are
    x = torch.randn(n, inp, generator=g) @ mix + 0.1 * torch.randn(n, inp, generator=g)
    held_out = torch.randn(n, inp, generator=g) @ mix + 0.1 * torch.randn(n, inp, generator=g)
    return w, x, held_out


@pytest.mark.parametrize("bits, group", [(4, 0), (4, 32), (3, 32), (2, 64)])
def test_gptq_lowers_the_output_error_against_nearest_on_held_out_inputs(bits, group):
    w, x, held_out = _layer(bits * 100 + group)
    q = gptq(w, x.T @ x / x.shape[0], bits, group)
    nearest, _ = linear_fake_quant(w, bits, group)
    err = lambda v: float(((held_out @ (w - v).T) ** 2).mean())  # noqa: E731
    assert err(q) < 0.8 * err(nearest)


@pytest.mark.parametrize("bits, group", [(4, 32), (3, 64), (8, 0)])
def test_gptq_weights_lie_on_the_grid_the_export_stores(bits, group):
    w, x, _ = _layer(7)
    q = gptq(w, x.T @ x / x.shape[0], bits, group)
    grid = as_grid(q.numpy(), bits, group)
    assert grid is not None and np.abs(grid.codes).max() <= 2 ** (bits - 1) - 1
    scales = grid.block_scales() if group else grid.scales[:, None]
    rebuilt = grid.codes * np.repeat(scales, group or w.shape[1], axis=1)[:, : w.shape[1]]
    assert np.allclose(rebuilt, q.numpy(), atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 200), st.sampled_from([2, 3, 4, 5, 6, 7, 8]),
       st.sampled_from([0, 32, 64, 128]), st.floats(1e-3, 10))
def test_block_scale_grid(rows, cols, bits, group, magnitude):
    """Each block of `group` inputs has one fp16 scale; every value is an integer multiple of it
    within [-qmax, qmax]; the error is at most half a step; the export recovers the grid exactly."""
    w = torch.randn(rows, cols, generator=torch.Generator().manual_seed(rows * cols)) * magnitude
    q, scales = linear_fake_quant(w, bits, group)
    qmax = 2 ** (bits - 1) - 1
    assert scales.shape == ((rows, -(-cols // group)) if group else (rows,))
    assert torch.equal(scales, scales.half().float())  # stored in fp16, exactly
    per = scales.repeat_interleave(group, dim=1)[:, :cols] if group else scales[:, None]
    codes = q / per
    assert torch.allclose(codes, codes.round(), atol=1e-4) and codes.abs().max() <= qmax + 1e-4
    # within half a step; the block maximum may clip by < 2^-11 of itself once its scale is fp16-rounded
    assert ((w - q).abs() <= per / 2 + w.abs() * 2.0 ** -11 + 1e-7).all()
    grid = as_grid(q.numpy(), bits, group)
    assert grid is not None


def test_gptq_rounding_needs_calibration_audio():
    policy = Policy.from_dict({"version": 1, "rules": [{"global": True, "quant": {"bits": 4, "rounding": "gptq"}}]})
    with pytest.raises(PolicyError, match="quant.rounding gptq needs calibration audio"):
        compress_model(FAMILIES["conformer"](), policy)


class TestHessianCache:
    """A layer's calibration statistics are computed once per (audio, exact model): the scan's
    options on one base share them, and any change to the model upstream is a new entry."""

    def test_same_model_reads_the_cache_and_a_changed_one_recomputes(self):
        import numpy as np
        import torch

        from asrcompress.compression import Calibration, discover_layers

        from .models import conformer

        model = conformer()
        layers = [l for l in discover_layers(model) if l.kind == "Linear"][:3]
        waves = [np.random.default_rng(i).standard_normal(8_000).astype(np.float32) * 0.1 for i in range(3)]
        calib = Calibration(waves)
        first = calib.hessians(model, layers)
        again = Calibration(waves).hessians(model, layers)  # a new object, the same audio: cached
        assert calib.forwards == 1 and first.keys() == again.keys()
        assert all(torch.equal(first[n], again[n]) for n in first)
        with torch.no_grad():  # an upstream weight changes: every statistic after it changes too
            model.get_submodule(layers[0].module_name).weight.mul_(2.0)
        changed = calib.hessians(model, layers)
        assert calib.forwards == 2
        assert not torch.allclose(changed[layers[1].name], first[layers[1].name])
        other = Calibration([w * 0.5 for w in waves])  # other audio: its own entries
        assert not torch.allclose(other.hessians(model, layers[:1])[layers[0].name], changed[layers[0].name])
        assert other.forwards == 1

    def test_fingerprint_reads_every_dtype_and_tells_them_apart(self):
        import torch
        from torch import nn

        from asrcompress.compression._calibration import model_fingerprint

        fp32 = nn.Linear(3, 2)
        half = nn.Linear(3, 2)
        half.load_state_dict(fp32.state_dict())
        assert model_fingerprint(half) == model_fingerprint(fp32)
        half.to(torch.bfloat16)  # numpy has no bfloat16: the bytes are read as they are stored
        assert model_fingerprint(half) != model_fingerprint(fp32)
