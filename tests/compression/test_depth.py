"""Depth pruning: a dropped block is bypassed (the residual stream passes through), the graph is
really shorter, the KL criterion drops the least harmful block, and bad settings are refused."""

import numpy as np
import onnx
import pytest
import torch

from asrcompress.compression import Calibration, Policy, PolicyError, compress_model
from asrcompress.compression._depth import kl
from asrcompress.export import export_onnx
from asrcompress.models import log_probs

from .models import FAMILIES, TINY_CONFORMER


def _wave():
    return 0.1 * torch.randn(1, 16_000, generator=torch.Generator().manual_seed(3)), torch.tensor([16_000])


def _calibration():
    return Calibration([np.random.default_rng(i).standard_normal(12_000).astype(np.float32) * 0.1 for i in range(4)])


def test_dropping_a_block_equals_bypassing_it():
    base = FAMILIES["conformer"]()
    small, states, _ = compress_model(base, Policy.from_dict({"version": 1, "depth": {"drop": [0]}}))
    assert states["model"].extra["depth"]["bypassed"] == ["encoder.conformer_layers.0"]
    block = base.encoder.conformer_layers[0]
    hook = block.register_forward_hook(lambda m, args, out: args[0])  # the block's output is its input
    wave, lens = _wave()
    with torch.no_grad():
        want = log_probs(base, wave, lens)[0]
        hook.remove()
        got = log_probs(small, wave, lens)[0]
    assert torch.allclose(got, want, atol=1e-6)
    # (T', N, d) -> (T', N, d): the other block keeps its name and its weights
    assert torch.equal(small.encoder.conformer_layers[1].ffn1.sequential[1].weight,
                       base.encoder.conformer_layers[1].ffn1.sequential[1].weight)


def test_the_exported_graph_is_shorter(tmp_path):
    base = FAMILIES["conformer"]()
    small, states, _ = compress_model(base, Policy.from_dict({"version": 1, "depth": {"drop": [1]}}))
    count = lambda p: sum(n.op_type in ("MatMul", "Gemm") for n in onnx.load(str(p)).graph.node)  # noqa: E731
    full = count(export_onnx(base, {}, tmp_path / "full.onnx")["path"])
    short = count(export_onnx(small, states, tmp_path / "short.onnx")["path"])
    per_block = (full - 1) // TINY_CONFORMER.num_layers  # every block's MatMuls; the head's one
    assert short == full - per_block and per_block > 0


def test_kl_drops_the_least_harmful_block_first():
    base = FAMILIES["conformer"]()
    cal = _calibration()
    teacher = cal.log_probs(base)
    damage = []
    for i in range(TINY_CONFORMER.num_layers):
        one, _, _ = compress_model(base, Policy.from_dict({"version": 1, "depth": {"drop": [i]}}))
        damage.append(kl(teacher, cal.log_probs(one)))
    _, states, _ = compress_model(base, Policy.from_dict({"version": 1, "depth": {"blocks_kept": 1}}), calibration=cal)
    dropped = states["model"].extra["depth"]["bypassed"]
    assert dropped == [f"encoder.conformer_layers.{int(np.argmin(damage))}"]
    assert kl(teacher, teacher) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("doc, match", [
    ({"blocks_kept": 2}, "keeps every one of the 2 blocks"),
    ({"drop": [5]}, "block 5 does not exist"),
    ({"blocks_kept": 1, "drop": [0]}, "exactly one of blocks_kept, drop"),
])
def test_bad_depth_settings_name_the_field(doc, match):
    with pytest.raises(PolicyError, match=match):
        compress_model(FAMILIES["conformer"](), Policy.from_dict({"version": 1, "depth": doc}), calibration=_calibration())


def test_ranking_by_kl_needs_calibration_audio():
    with pytest.raises(PolicyError, match="depth.blocks_kept .* needs calibration audio"):
        compress_model(FAMILIES["conformer"](), Policy.from_dict({"version": 1, "depth": {"blocks_kept": 1}}))


def test_a_depth_only_policy_is_distilled():
    """A policy with no per-layer rule still compressed the model: its distillation runs."""
    from asrcompress.compression import compress_and_recover

    from .contract import kd_data

    base = FAMILIES["conformer"]()
    policy = Policy.from_dict({"version": 1, "depth": {"drop": [0]},
                               "distill": {"steps": 2, "lr": 1e-3, "temperature": 2.0, "alpha": 0.5}})
    plain = compress_model(base, Policy.from_dict({"version": 1, "depth": {"drop": [0]}}))[0]
    out = compress_and_recover(base, policy, kd_data())
    assert out.distill is not None and out.distill["steps"] == 2
    w = "encoder.conformer_layers.1.ffn1.sequential.1.weight"
    assert not torch.equal(out.model.state_dict()[w], plain.state_dict()[w])
