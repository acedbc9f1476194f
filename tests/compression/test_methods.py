"""Every registered method on every model family (the method contract itself is tests/compression/contract.py), then one test class per method."""

import copy
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from asrcompress.compression import (
    HANDLERS, ClusterConfig, ConfigError, LowRankConfig, MagnitudePruneConfig, Policy, PolicyError, QuantConfig,
    compress_model, discover_layers, get_weight, size_report,
)
from asrcompress.compression._lowrank import LowRank
from asrcompress.compression._prune import MagnitudePrune
from asrcompress.compression._quant import linear_fake_quant, log_quant

from .models import FAMILIES, run

# One moderate setting per method key: the contract suite runs each on each model family.
SETTINGS = {
    "prune": {"sparsity": 0.5},
    "quant": {"bits": 4},
    "lowrank": {"rank_fraction": 0.5},
    "cluster": {"clusters": 8},
    "structured": {"ratio": 0.25},
    "tucker": {"rank_fraction": 0.5},
    "separable": {"multiplier": 1, "fit": "weights"},  # (its calibrated fit: test_separable.py)
    "sparsity_reg": {"penalty": "l1", "strength": 0.01, "steps": 2},
}


# Family/method pairs where the method has no layer to act on (an LSTM has no FFN, attention or
# conv-module blocks for structured pruning). Every other pair must compress something.
# Tucker-2 takes full 1-D and 2-D convs with kernels above 1 (wav2vec2's feature encoder has them);
# the separable conv takes 2-D convs only.
DOES_NOT_APPLY = {("lstm", "structured"), ("lstm", "tucker"), ("lstm", "separable"), ("wav2vec2", "separable")}


def _regularize(family, key, model):
    """sparsity_reg trains, so it gets a tiny distillation run (ConformerCTC only)."""
    if key != "sparsity_reg":
        return None
    if family != "conformer":
        pytest.skip("distillation recovery drives ConformerCTC models")
    from asrcompress.compression import DistillConfig
    from asrcompress.compression._distill import regularizer

    torch.manual_seed(0)
    waves = [(torch.randn(4000) * 3000).short().numpy() for _ in range(3)]
    return regularizer(model, waves, [torch.tensor([3, 4])] * 3, DistillConfig(steps=1), batch_seconds=1.0)


def test_every_per_layer_method_runs_on_every_family():
    # model-scope methods (depth) are a policy's top-level field: their contract is test_contract.py's
    from asrcompress.compression import METHODS

    assert {cls.key for cls in HANDLERS if METHODS[cls.key].scope == "layer"} == set(SETTINGS)


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("key", list(SETTINGS))
class TestContract:
    def policy(self, key):
        return Policy.from_dict({"version": 1, "rules": [{"global": True, key: SETTINGS[key]}]})

    def test_model_still_runs_with_same_output_shape(self, family, key):
        model = FAMILIES[family]()
        before = run(model)
        compressed, states, _ = compress_model(model, self.policy(key), _regularize(family, key, model))
        if (family, key) in DOES_NOT_APPLY:
            assert not states  # declared: nothing of this family is this method's kind of layer
            return
        assert states  # something was compressed
        after = run(compressed)
        assert after.shape == before.shape and torch.isfinite(after).all()
        assert torch.equal(run(model), before)  # the input model is untouched

    def test_deterministic(self, family, key):
        m1, m2 = FAMILIES[family](), FAMILIES[family]()
        a, _, _ = compress_model(m1, self.policy(key), _regularize(family, key, m1))
        b, _, _ = compress_model(m2, self.policy(key), _regularize(family, key, m2))
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and torch.equal(va, vb)

    def test_deployed_size_shrinks(self, family, key):
        if key == "sparsity_reg":
            pytest.skip("regularisation alone stores nothing less; the pruning after it does")
        base = FAMILIES[family]()
        compressed, states, _ = compress_model(base, self.policy(key))
        if not states:
            pytest.skip(f"{key} applies to no layer of the {family} model")
        fp32 = size_report(base)["total_bytes"]
        report = size_report(compressed, states, fp32_bytes=fp32)
        assert report["total_bytes"] < report["fp32_bytes"] == fp32
        if key != "structured":  # shapes unchanged: the reference can be derived from the model
            assert size_report(compressed, states)["fp32_bytes"] == fp32


class TestMagnitudePrune:
    @settings(max_examples=40, deadline=None)
    @given(st.integers(1, 40), st.integers(1, 40), st.floats(0.0, 0.99))
    def test_sparsity_is_exact(self, rows, cols, sparsity):
        w = torch.randn(rows, cols)
        keep = MagnitudePrune().compute(w, MagnitudePruneConfig(sparsity)).keep
        assert int((~keep).sum()) == round(sparsity * rows * cols)

    def test_keeps_the_largest_magnitudes(self):
        w = torch.randn(30, 20)
        keep = MagnitudePrune().compute(w, MagnitudePruneConfig(0.7)).keep
        assert w[keep].abs().min() >= w[~keep].abs().max()

    def test_sparsity_exact_after_compression(self):
        model = FAMILIES["conformer"]()
        p = Policy.from_dict({"version": 1, "rules": [{"type": "Linear", "prune": {"sparsity": 0.3}}]})
        compressed, _, _ = compress_model(model, p)
        for layer in discover_layers(compressed):
            if layer.kind == "Linear":
                w = get_weight(compressed, layer)
                assert int((w == 0).sum()) == round(0.3 * w.numel())


class TestLinearQuant:
    @settings(max_examples=30, deadline=None)
    @given(st.integers(1, 20), st.integers(2, 30), st.sampled_from([2, 3, 4, 5, 6, 8]))
    def test_values_lie_on_the_grid_within_half_a_step(self, rows, cols, bits):
        w = torch.randn(rows, cols)
        q, scale = linear_fake_quant(w, bits)
        codes = q / scale[:, None]
        qmax = 2 ** (bits - 1) - 1
        assert torch.allclose(codes, codes.round(), atol=1e-4)
        assert codes.abs().max() <= qmax + 1e-4
        assert ((w - q).abs() <= scale[:, None] / 2 + 1e-6).all()

    def test_sqnr_rises_with_bits_and_meets_the_uniform_bound(self):
        torch.manual_seed(0)
        w = torch.randn(64, 256)
        sqnr = []
        for bits in (2, 3, 4, 5, 6, 8):
            q, scale = linear_fake_quant(w, bits)
            noise = ((w - q) ** 2).mean()
            sqnr.append(10 * math.log10(float((w**2).mean() / noise)))
            # Uniform rounding error has variance step^2 / 12 (allow 15% slack from finite samples)
            assert noise <= 1.15 * (scale**2).mean() / 12
        assert all(b > a for a, b in zip(sqnr, sqnr[1:]))
        # Each extra bit buys about 6 dB once the grid is fine (6.02 dB/bit in theory)
        assert sqnr[-1] - sqnr[-2] == pytest.approx(2 * 6.02, abs=1.5)

    @settings(max_examples=30, deadline=None)
    @given(st.integers(1, 20), st.integers(2, 30), st.sampled_from([2, 4, 8]), st.floats(1e-3, 1e3))
    def test_scales_are_fp16_numbers(self, rows, cols, bits, magnitude):
        q, scale = linear_fake_quant(torch.randn(rows, cols) * magnitude, bits)
        assert torch.equal(scale.half().float(), scale)
        # The row maximum still lands on the largest code, so the scale is recoverable from it.
        assert torch.allclose(q.abs().amax(dim=1), scale * (2 ** (bits - 1) - 1))

    def test_quantized_model_keeps_small_tensors_as_fp16_numbers_and_counts_them_so(self):
        from asrcompress.compression._quant import is_fp16_exact, small_tensors

        base = FAMILIES["conformer"]()
        p = Policy.from_dict({"version": 1, "rules": [{"global": True, "quant": {"bits": 8}}]})
        compressed, states, _ = compress_model(base, p)
        small = small_tensors(compressed)
        assert small and all(is_fp16_exact(t) for t in small)
        assert not all(is_fp16_exact(t) for t in small_tensors(base))  # it did round something
        layer_bytes = sum(layer["bytes"] for layer in size_report(compressed, states)["layers"])
        rows = sum(layer["shape"][0] for layer in size_report(compressed, states)["layers"])
        weights = sum(layer["params"] for layer in size_report(compressed, states)["layers"])
        assert layer_bytes == weights + 2 * rows  # int8 codes + one fp16 scale per output channel
        other = size_report(compressed, states)["other_bytes"]
        assert other == 2 * sum(t.numel() for t in small)  # nothing else is stored outside the layers

    def test_feature_buffers_and_counters_are_not_counted(self):
        base = FAMILIES["conformer"]()
        floats = sum(t.numel() * 4 for k, t in base.state_dict().items()
                     if t.is_floating_point() and not k.startswith("features."))
        assert size_report(base)["total_bytes"] == floats


class TestLogQuant:
    @settings(max_examples=30, deadline=None)
    @given(st.integers(1, 20), st.integers(2, 30), st.sampled_from([2, 3, 4, 5, 6, 8]))
    def test_values_are_zero_or_signed_powers_of_two_within_range(self, rows, cols, bits):
        w = torch.randn(rows, cols)
        q, e_max = log_quant(w, bits)
        nz = q != 0
        e = torch.log2(q.abs()[nz])
        assert torch.allclose(e, e.round())
        levels = 2 ** (bits - 1) - 1
        row_emax = e_max[:, None].expand_as(q)[nz]
        assert (e <= row_emax).all() and (e >= row_emax - (levels - 1)).all()
        assert (torch.sign(q[nz]) == torch.sign(w[nz])).all()

    def test_sqnr_rises_with_bits(self):
        torch.manual_seed(0)
        w = torch.randn(64, 256)
        sqnr = []
        for bits in (2, 3, 4, 5, 6, 8):
            q, _ = log_quant(w, bits)
            sqnr.append(10 * math.log10(float((w**2).mean() / ((w - q) ** 2).mean())))
        assert all(b >= a for a, b in zip(sqnr, sqnr[1:])) and sqnr[-1] > sqnr[0] + 5


class TestLowRank:
    @settings(max_examples=30, deadline=None)
    @given(st.integers(2, 40), st.integers(2, 40), st.floats(0.05, 1.0))
    def test_frobenius_error_equals_dropped_singular_values(self, rows, cols, frac):
        w = torch.randn(rows, cols, dtype=torch.float64)
        f = LowRank().compute(w, LowRankConfig(rank_fraction=frac))
        r = f.first.shape[0]
        assert f.first.shape == (r, cols) and f.second.shape == (rows, r)
        s = torch.linalg.svdvals(w)
        err = torch.linalg.norm(w - f.second @ f.first)
        assert float(err) == pytest.approx(float(s[r:].pow(2).sum().sqrt()), abs=1e-8)

    def test_energy_picks_the_smallest_sufficient_rank(self):
        w = torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.5]))
        # energies: 9/14.25 = .63, 13/14.25 = .91, 14/14.25 = .98
        assert LowRank().compute(w, LowRankConfig(energy=0.9)).first.shape[0] == 2
        assert LowRank().compute(w, LowRankConfig(energy=0.95)).first.shape[0] == 3

    def test_compressed_layer_has_formula_shapes_and_rank_is_checked(self):
        model = FAMILIES["conformer"]()
        name = "encoder.conformer_layers.0.ffn1.sequential.1"  # Linear 32 -> 64
        p = Policy.from_dict({"version": 1, "rules": [{"name": name, "lowrank": {"rank": 8}}]})
        compressed, states, _ = compress_model(model, p)
        m = compressed.get_submodule(name)
        assert m.first.weight.shape == (8, 32) and m.second.weight.shape == (64, 8)
        assert states[name].rank == 8
        bad = Policy.from_dict({"version": 1, "rules": [{"name": name, "lowrank": {"rank": 33}}]})
        with pytest.raises(Exception, match="rank=33 is above min\\(in, out\\)=32"):
            compress_model(model, bad)

    def test_rank_config_needs_exactly_one_field(self):
        with pytest.raises(ConfigError, match="exactly one"):
            LowRankConfig(rank=4, energy=0.9)


class TestCluster:
    @settings(max_examples=15, deadline=None)
    @given(st.integers(4, 30), st.integers(4, 30), st.integers(2, 16))
    def test_exactly_k_distinct_values(self, rows, cols, k):
        from asrcompress.compression._cluster import Cluster

        w = torch.randn(rows, cols)
        q = Cluster().compute(w, ClusterConfig(k)).weight
        assert torch.unique(q).numel() == min(k, rows * cols)

    def test_pruned_zeros_stay_zero_and_outside_the_codebook(self):
        model = FAMILIES["conformer"]()
        p = Policy.from_dict({"version": 1, "rules": [
            {"type": "Linear", "prune": {"sparsity": 0.5}, "cluster": {"clusters": 4}}]})
        compressed, _, _ = compress_model(model, p)
        for layer in discover_layers(compressed):
            if layer.kind == "Linear":
                w = get_weight(compressed, layer)
                assert int((w == 0).sum()) == round(0.5 * w.numel())
                assert torch.unique(w[w != 0]).numel() == 4


def test_quant_config_rejects_unsupported_bits_groups_and_roundings():
    with pytest.raises(ConfigError, match="quant.bits=1"):
        QuantConfig(bits=1)
    with pytest.raises(ConfigError, match="quant.group=48"):
        QuantConfig(bits=4, group=48)
    with pytest.raises(ConfigError, match="quant.rounding='awq'"):
        QuantConfig(bits=4, rounding="awq")
    with pytest.raises(ConfigError, match="kind=log takes neither"):
        QuantConfig(bits=4, kind="log", group=32)


class TestStructuredPrune:
    @settings(max_examples=10, deadline=None)
    @given(st.floats(0.0, 0.9), st.sampled_from(["l1", "l2"]))
    def test_shapes_follow_the_formulas(self, ratio, criterion):
        from asrcompress.compression._structured import keep_count

        model = FAMILIES["conformer"]()  # d=32, FFN F=64, conv C=32
        p = Policy.from_dict({"version": 1, "rules": [
            {"pattern": "encoder.*.ffn1.sequential.1", "structured": {"ratio": ratio, "criterion": criterion}},
            {"pattern": "encoder.*.conv_module.sequential.0", "structured": {"ratio": ratio}}]})
        compressed, states, _ = compress_model(model, p)
        f, c = keep_count(64, ratio), keep_count(32, ratio)
        layer = compressed.encoder.conformer_layers[0]
        assert layer.ffn1.sequential[1].weight.shape == (f, 32)
        assert layer.ffn1.sequential[4].weight.shape == (32, f)
        conv = layer.conv_module.sequential
        assert conv[0].weight.shape == (2 * c, 32, 1)
        assert conv[2].weight.shape == (c, 1, 7) and conv[2].groups == c
        assert conv[3].num_features == c and conv[5].weight.shape == (32, c, 1)
        assert run(compressed).shape == run(model).shape

    def test_keeps_the_strongest_units_and_output_is_unchanged_without_pruning(self):
        model = FAMILIES["conformer"]()
        ffn = model.encoder.conformer_layers[0].ffn1.sequential
        norms = ffn[1].weight.detach().norm(dim=1)
        p = Policy.from_dict({"version": 1, "rules": [
            {"name": "encoder.conformer_layers.0.ffn1.sequential.1", "structured": {"ratio": 0.5}}]})
        compressed, _, _ = compress_model(model, p)
        kept = compressed.encoder.conformer_layers[0].ffn1.sequential[1].weight.detach().norm(dim=1)
        assert torch.allclose(kept.sort().values, norms.sort().values[32:])
        same, _, _ = compress_model(model, Policy.from_dict({"version": 1, "rules": [
            {"name": "encoder.conformer_layers.0.ffn1.sequential.1", "structured": {"ratio": 0.0}}]}))
        assert torch.allclose(run(same), run(model), atol=1e-5)

    @settings(max_examples=10, deadline=None)
    @given(st.floats(0.0, 0.9), st.sampled_from(["l1", "l2"]))
    def test_head_shapes_follow_the_formula(self, ratio, criterion):
        from asrcompress.compression._structured import keep_count

        model = FAMILIES["conformer"]()  # d=32, h=4 heads of d_h=8
        p = Policy.from_dict({"version": 1, "rules": [
            {"pattern": "encoder.*.self_attn.in_proj", "structured": {"ratio": ratio, "criterion": criterion}}]})
        compressed, states, _ = compress_model(model, p)
        h = keep_count(4, ratio)
        attn = compressed.encoder.conformer_layers[1].self_attn
        assert attn.num_heads == h and attn.in_proj_weight.shape == (3 * h * 8, 32)
        assert attn.out_proj.weight.shape == (32, h * 8)
        assert states["encoder.conformer_layers.1.self_attn.in_proj"].kept == h
        assert run(compressed).shape == run(model).shape

    def test_all_heads_kept_matches_torch_attention(self):
        from asrcompress.compression._attention import HeadPrunedAttention

        torch.manual_seed(0)
        mha = torch.nn.MultiheadAttention(32, 4).eval()
        ours = HeadPrunedAttention.from_heads(mha, torch.arange(4)).eval()
        x = torch.randn(9, 3, 32)  # (T, N, d)
        pad = torch.zeros(3, 9, dtype=torch.bool)
        pad[1, 6:] = True
        want = mha(x, x, x, key_padding_mask=pad, need_weights=False)[0]
        got = ours(x, x, x, key_padding_mask=pad, need_weights=False)[0]
        assert torch.allclose(got, want, atol=1e-5)

    def test_dropping_a_head_equals_zeroing_its_output(self):
        from asrcompress.compression._attention import HeadPrunedAttention

        torch.manual_seed(0)
        mha = torch.nn.MultiheadAttention(32, 4).eval()
        x = torch.randn(7, 2, 32)
        pruned = HeadPrunedAttention.from_heads(mha, torch.tensor([0, 2, 3]))
        with torch.no_grad():
            mha.out_proj.weight[:, 8:16] = 0  # head 1's columns of the output projection
        assert torch.allclose(pruned(x, x, x)[0], mha(x, x, x, need_weights=False)[0], atol=1e-5)

    def test_keeps_the_strongest_heads(self):
        model = FAMILIES["conformer"]()
        w = model.encoder.conformer_layers[0].self_attn.in_proj_weight.detach()
        norms = w.reshape(3, 4, -1).transpose(0, 1).reshape(4, -1).norm(dim=1)
        p = Policy.from_dict({"version": 1, "rules": [
            {"name": "encoder.conformer_layers.0.self_attn.in_proj", "structured": {"ratio": 0.5}}]})
        compressed, _, _ = compress_model(model, p)
        kept = compressed.encoder.conformer_layers[0].self_attn.in_proj_weight.detach()
        got = kept.reshape(3, 2, -1).transpose(0, 1).reshape(2, -1).norm(dim=1)
        assert torch.allclose(got, norms[norms.argsort()[2:].sort().values])

    @settings(max_examples=10, deadline=None)
    @given(st.floats(0.0, 0.9), st.floats(0.0, 0.9))
    def test_subsampling_channel_shapes_follow_the_formula(self, r1, r2):
        from asrcompress.compression._structured import keep_count
        from asrcompress.models import subsampled_length

        model = FAMILIES["conformer"]()
        d, fp = model.cfg.d_model, subsampled_length(model.cfg.n_mels)
        p = Policy.from_dict({"version": 1, "rules": [
            {"name": "subsampling.conv1", "structured": {"ratio": r1}},
            {"name": "subsampling.conv2", "structured": {"ratio": r2}}]})
        compressed, states, _ = compress_model(model, p)
        c1, c2 = keep_count(d, r1), keep_count(d, r2)
        sub = compressed.subsampling
        assert sub.conv1.weight.shape == (c1, 1, 3, 3)
        assert sub.conv2.weight.shape == (c2, c1, 3, 3)
        assert sub.proj.weight.shape == (d, c2 * fp)
        assert states["subsampling.conv2"].kept == c2
        assert run(compressed).shape == run(model).shape

    def test_dropping_a_subsampling_channel_equals_zeroing_its_projection(self):
        from asrcompress.compression._structured import Block, shrink

        model = FAMILIES["conformer"]()
        sub = model.subsampling
        keep = torch.arange(1, sub.conv2.out_channels)  # drop channel 0
        fp = sub.proj.in_features // sub.conv2.out_channels
        zeroed = copy.deepcopy(model)
        zeroed.subsampling.proj.weight.data[:, :fp] = 0
        shrink(Block("conv2d", sub, {"first": "conv2", "second": "proj"}), keep)
        assert torch.allclose(run(model), run(zeroed), atol=1e-5)

    def test_taylor_keeps_the_units_with_the_largest_weight_times_gradient(self):
        model = FAMILIES["conformer"]()
        name = "encoder.conformer_layers.0.ffn1.sequential.1"

        def gradients(m):  # any differentiable loss will do: the criterion is w * dL/dw
            run(m).pow(2).mean().backward()

        probe = copy.deepcopy(model)
        gradients(probe)
        w = probe.encoder.conformer_layers[0].ffn1.sequential[1].weight
        want = (w * w.grad).sum(dim=1).abs().topk(48).indices.sort().values  # keep 48 of 64
        p = Policy.from_dict({"version": 1, "rules": [
            {"name": name, "structured": {"ratio": 0.25, "criterion": "taylor"}}]})
        compressed, _, _ = compress_model(model, p, gradients=gradients)
        kept = compressed.encoder.conformer_layers[0].ffn1.sequential[1].weight.detach()
        assert torch.equal(kept, w.detach()[want])
        assert all(q.grad is None for q in compressed.parameters())  # no gradients left behind

    def test_taylor_without_training_data_is_a_clear_error(self):
        p = Policy.from_dict({"version": 1, "rules": [
            {"pattern": "encoder.*.ffn1.sequential.1", "structured": {"ratio": 0.5, "criterion": "taylor"}}]},
            source="p.yaml")
        with pytest.raises(PolicyError, match="p.yaml: layer encoder.conformer_layers.0.ffn1.sequential.1: "
                                              "structured.criterion taylor needs training data"):
            compress_model(FAMILIES["conformer"](), p)

    def test_refused_on_a_layer_that_starts_no_block(self):
        from asrcompress.compression import PolicyError

        p = Policy.from_dict({"version": 1, "rules": [{"name": "head", "structured": {"ratio": 0.5}}]})
        with pytest.raises(PolicyError, match="structured does not apply to layer head"):
            compress_model(FAMILIES["conformer"](), p)


class TestSparsityReg:
    def _weights_after(self, reg: dict | None):
        from asrcompress.compression import DistillConfig
        from asrcompress.compression._distill import regularizer

        model = FAMILIES["conformer"]()
        rules = [{"type": "Linear", "quant": {"bits": 8}}]
        if reg:
            rules[0]["sparsity_reg"] = reg
        torch.manual_seed(0)
        waves = [(torch.randn(4000) * 3000).short().numpy() for _ in range(4)]
        targets = [torch.tensor([3, 4, 5])] * 4
        steps = DistillConfig(steps=20, lr=3e-3)
        if reg is None:  # the same training without the penalty, for comparison
            rules[0]["sparsity_reg"] = {"penalty": "l1", "strength": 1e-9, "steps": 20}
        compressed, _, _ = compress_model(model, Policy.from_dict({"version": 1, "rules": rules}),
                                          regularizer(model, waves, targets, steps, batch_seconds=1.0))
        return compressed.encoder.conformer_layers[0].ffn1.sequential[1].weight.detach()

    def test_l1_penalty_shrinks_weights(self):
        plain = self._weights_after(None)
        l1 = self._weights_after({"penalty": "l1", "strength": 5.0, "steps": 20})
        assert l1.abs().mean() < 0.9 * plain.abs().mean()

    def test_group_lasso_shrinks_rows(self):
        plain = self._weights_after(None)
        gl = self._weights_after({"penalty": "group_lasso", "strength": 5.0, "steps": 20})
        assert gl.norm(dim=1).mean() < 0.9 * plain.norm(dim=1).mean()

    def test_needs_training_data(self):
        from asrcompress.compression import PolicyError

        p = Policy.from_dict({"version": 1, "rules": [{"global": True, "sparsity_reg": {"strength": 0.1}}]})
        with pytest.raises(PolicyError, match="sparsity_reg trains the model"):
            compress_model(FAMILIES["conformer"](), p)
