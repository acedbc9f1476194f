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
