"""Export bundles carry sha256 sums, and loading anything from a bundle checks them."""

import pytest

from asrcompress.errors import UserError
from asrcompress.export import export_onnx, session
from asrcompress.export._bundle import verify_bundle, write_sums
from asrcompress.models import ConformerCTC, load_model, save_model

from ..models.test_io import TINY


@pytest.fixture
def bundle(tmp_path):
    model = ConformerCTC(TINY).eval()
    save_model(model, tmp_path / "b" / "model")
    export_onnx(model, {}, tmp_path / "b" / "model.onnx")
    (tmp_path / "b" / "policy.yaml").write_text("version: 1\nrules: []\n")
    write_sums(tmp_path / "b")
    return tmp_path / "b"


def test_an_intact_bundle_loads_by_folder_model_and_onnx(bundle):
    verify_bundle(bundle)
    assert load_model(bundle).cfg == load_model(bundle / "model").cfg == TINY
    session(bundle / "model.onnx")


@pytest.mark.parametrize("victim", ["model/model.safetensors", "model/config.json", "policy.yaml"])
def test_a_changed_file_is_refused_on_load(bundle, victim):
    path = bundle / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match=f"{victim}: sha256 does not match"):
        load_model(bundle / "model")


def test_a_changed_onnx_is_refused_before_onnx_runtime_reads_it(bundle):
    with open(bundle / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(UserError, match="model.onnx: sha256 does not match"):
        session(bundle / "model.onnx")


def test_a_missing_file_and_an_added_one(bundle):
    (bundle / "notes.txt").write_text("mine")
    load_model(bundle)  # loading tolerates files added beside the bundle ...
    with pytest.raises(UserError, match="notes.txt: not listed"):
        verify_bundle(bundle)  # ... a full verification does not
    (bundle / "policy.yaml").unlink()
    with pytest.raises(UserError, match="policy.yaml: listed in SHA256SUMS but missing"):
        load_model(bundle)


def test_verify_command(bundle):
    from ..test_cli import assert_one_line_error, run

    p = run("verify", "--bundle", str(bundle))
    assert p.returncode == 0 and "files match SHA256SUMS" in p.stdout
    (bundle / "policy.yaml").write_text("changed\n")
    assert_one_line_error(run("verify", "--bundle", str(bundle)), "policy.yaml", "sha256 does not match")
