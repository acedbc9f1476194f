import json

from asrcompress.models import ModelConfig, load_model
from asrcompress.models._train import TrainConfig, make_batches, train

TINY = ModelConfig(d_model=32, num_layers=1, num_heads=2, ffn_dim=64, conv_kernel=7, dropout=0.0)


def test_make_batches_respects_padded_budget():
    durations = [1.0, 3.0, 2.0, 2.5, 0.5, 4.0]
    batches = make_batches(durations, 5.0)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for b in batches:
        assert max(durations[i] for i in b) * len(b) <= 5.0 or len(b) == 1


def test_training_reduces_loss_and_resumes_from_checkpoint(tiny_corpus, tmp_path):
    import torch

    out = tmp_path / "m"
    cfg = TrainConfig(epochs=2, batch_seconds=20, warmup_steps=4, peak_lr=3e-3, workers=2)
    logs = []
    first = train(tiny_corpus, out, TINY, TrainConfig(**{**cfg.__dict__, "epochs": 1}), torch.device("cpu"), logs.append)
    assert first["epochs"] == 1 and (out / "checkpoint.pt").exists()
    second = train(tiny_corpus, out, TINY, cfg, torch.device("cpu"), logs.append)
    assert any("resumed" in line and "epoch 1" in line for line in logs)
    assert second["epochs"] == 2 and second["steps"] == 2 * second["batches_per_epoch"]
    hist = second["history"]
    assert len(hist) == 2 and hist[1]["loss"] < hist[0]["loss"]
    load_model(out)  # the best model so far is a loadable folder
    assert json.loads((out / "config.json").read_text())["model"]["d_model"] == 32


def test_vtlp_moves_a_formant_by_its_factor():
    """A peak at mel bin 40, read at f * 0.8, appears at bin 50 (40 / 0.8); factor 1 is the identity."""
    import torch

    from asrcompress.models._train import vtlp

    feats = torch.zeros(2, 3, 80)
    feats[:, :, 40] = 1.0
    out = vtlp(feats, torch.tensor([1.0, 0.8]))
    assert torch.equal(out[0], feats[0])
    assert out[1, 0].argmax().item() == 50 and out.shape == feats.shape
