import json

import pytest
import torch

from asrcompress.errors import UserError
from asrcompress.models import CONFIG, WEIGHTS, ConformerCTC, ModelConfig, load_model, save_model

TINY = ModelConfig(d_model=32, num_layers=1, num_heads=2, ffn_dim=64, conv_kernel=7)


@pytest.fixture
def model_dir(tmp_path):
    save_model(ConformerCTC(TINY), tmp_path / "m")
    return tmp_path / "m"


def test_missing_folder_and_files(tmp_path, model_dir):
    with pytest.raises(UserError, match="model folder not found"):
        load_model(tmp_path / "nope")
    (model_dir / WEIGHTS).unlink()
    with pytest.raises(UserError, match="weights not found"):
        load_model(model_dir)


def test_truncated_safetensors_is_refused(model_dir):
    data = (model_dir / WEIGHTS).read_bytes()
    (model_dir / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="not a valid safetensors file"):
        load_model(model_dir)


def test_pickle_checkpoint_is_refused(model_dir):
    torch.save(ConformerCTC(TINY).state_dict(), model_dir / WEIGHTS)
    with pytest.raises(UserError, match="not a valid safetensors file"):
        load_model(model_dir)


def test_mismatched_shapes_name_the_weight(model_dir):
    cfg = json.loads((model_dir / CONFIG).read_text())
    cfg["model"]["ffn_dim"] = 48
    (model_dir / CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="do not fit the model"):
        load_model(model_dir)


def test_bad_config_fields(model_dir):
    (model_dir / CONFIG).write_text("{broken")
    with pytest.raises(UserError, match="invalid JSON"):
        load_model(model_dir)
    (model_dir / CONFIG).write_text(json.dumps({"architecture": "lstm"}))
    with pytest.raises(UserError, match="'architecture'"):
        load_model(model_dir)


class TestPickleCheckpoints:
    """A model.pt beside config.json: refused unless trusted, and then weights-only."""

    @pytest.fixture
    def pt_dir(self, model_dir):
        state = load_model(model_dir).state_dict()
        (model_dir / WEIGHTS).unlink()
        torch.save(state, model_dir / "model.pt")
        return model_dir, state

    def test_refused_without_the_trust_flag(self, pt_dir, monkeypatch):
        monkeypatch.delenv("ASRCOMPRESS_TRUST_PICKLE", raising=False)
        with pytest.raises(UserError, match=r"model.pt: a pickle checkpoint, refused .*--trust-pickle"):
            load_model(pt_dir[0])

    def test_loads_exactly_when_trusted(self, pt_dir):
        model = load_model(pt_dir[0], trust_pickle=True)
        assert all(torch.equal(model.state_dict()[k], v) for k, v in pt_dir[1].items())

    def test_trusted_is_still_weights_only(self, model_dir):
        (model_dir / WEIGHTS).unlink()

        class Evil:
            def __reduce__(self):
                return (print, ("pwned",))

        torch.save({"x": Evil()}, model_dir / "model.pt")
        with pytest.raises(UserError, match="not a loadable weights-only checkpoint"):
            load_model(model_dir, trust_pickle=True)

    def test_cli_flag(self, pt_dir):
        import subprocess
        import sys

        base = [sys.executable, "-m", "asrcompress.cli"]
        refused = subprocess.run(base + ["layers", "--model", str(pt_dir[0])], capture_output=True, text=True)
        assert refused.returncode == 2 and "refused" in refused.stderr and "Traceback" not in refused.stderr
        ok = subprocess.run(base + ["--trust-pickle", "layers", "--model", str(pt_dir[0])], capture_output=True,
                            text=True)
        assert ok.returncode == 0, ok.stderr
