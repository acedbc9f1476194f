"""The model-family contract (as `optuna.testing`): every registered adapter, and a user's own,
passes `check_adapter` on a small instance of its family.

    log_probs: (N, T', V) with V the vocabulary's size, output lengths by the declared formula;
    export:    the ONNX graph (the adapter's deploy module) matches log_probs on the app's input;
    blocks:    every declared block takes structured pruning, and the model still runs;
    folder:    a savable family saves and loads back to the same outputs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from asrcompress.compression import Policy, compress_model
from asrcompress.export import OnnxAcousticModel, export_onnx
from asrcompress.models import adapter_for, load_model, save_model

LENGTHS = (16_000, 11_200, 24_000)  # samples: 1 s, 0.7 s, 1.5 s in one padded batch
EXPORT_TOL = 1e-3


def _batch(lengths=LENGTHS) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    wave = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        wave[i, :n] = 0.1 * torch.randn(n, generator=g)
    return wave, torch.tensor(lengths)


def check_log_probs(model: nn.Module) -> None:
    adapter = adapter_for(model)
    wave, lens = _batch()
    with torch.no_grad():
        lp, out_lens = adapter.log_probs(model, wave, lens)
    vocab = adapter.vocabulary(model)
    want = [adapter.output_length(model, n) for n in LENGTHS]
    assert lp.shape == (len(LENGTHS), max(want), len(vocab.tokens)), (lp.shape, want)
    assert out_lens.tolist() == want
    assert torch.allclose(lp.exp().sum(-1), torch.ones(lp.shape[:2]), atol=1e-4)  # log-probabilities
    assert 0 <= vocab.blank < len(vocab.tokens)


def check_export(model: nn.Module, tmp: Path) -> None:
    adapter = adapter_for(model)
    path = Path(export_onnx(model, None, tmp / "model.onnx")["path"])  # verified inside, and again here
    onnx_model = OnnxAcousticModel(path, adapter.features(model))
    for n in (9_600, 20_000):
        wave, lens = _batch((n,))
        with torch.no_grad():
            want = adapter.log_probs(model, wave, lens)[0][0].numpy()
        got = onnx_model.emissions([wave[0].numpy()])[0]
        assert got.shape == want.shape and np.abs(got - want).max() < EXPORT_TOL


def check_blocks(model: nn.Module, ratio: float = 0.5) -> None:
    adapter = adapter_for(model)
    wave, lens = _batch()
    blocks = adapter.blocks(model)
    for spec in blocks:
        policy = Policy.from_dict({"version": 1, "rules": [{"name": spec.first, "structured": {"ratio": ratio}}]})
        small, states, _ = compress_model(model, policy)
        assert states[spec.first].kept is not None, spec
        with torch.no_grad():
            lp, out_lens = adapter.log_probs(small, wave, lens)
        assert lp.shape[-1] == len(adapter.vocabulary(model).tokens) and torch.isfinite(lp).all()


def check_folder(model: nn.Module, tmp: Path) -> None:
    adapter = adapter_for(model)
    if not adapter.savable:
        return
    save_model(model, tmp / "folder")
    back = load_model(tmp / "folder")
    assert adapter_for(back) is adapter
    wave, lens = _batch()
    with torch.no_grad():
        assert torch.equal(adapter.log_probs(model, wave, lens)[0], adapter.log_probs(back, wave, lens)[0])


def check_adapter(model: nn.Module, structured: dict[str, float] | None = None) -> None:
    """The whole contract. `structured`: a layer -> ratio the family must take (a block it declares)."""
    model.eval()
    check_log_probs(model)
    check_blocks(model)
    if structured:
        names = {b.first for b in adapter_for(model).blocks(model)}
        assert set(structured) <= names, f"declared blocks {sorted(names)} lack {sorted(set(structured) - names)}"
    with tempfile.TemporaryDirectory() as tmp:
        check_export(model, Path(tmp))
        check_folder(model, Path(tmp))
