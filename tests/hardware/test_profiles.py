"""Contract suite over every shipped profile, and schema errors."""

import re
from pathlib import Path

import pytest
import yaml

from asrcompress.errors import UserError
from asrcompress.hardware import KERNELS, load_profile, parse_profile, predict_ms
from asrcompress.hardware._profile import NUMBERS

from ..conftest import REPO
from ..test_cli import assert_one_line_error, run

SHIPPED = sorted((REPO / "hardware_profiles").glob("*.yaml"))
REQUIRED = {"host", "rpi4", "rpi5", "phone_x3", "jetson_orin_nano", "laptop_avx512_vnni"}


def test_the_required_devices_are_shipped():
    assert REQUIRED <= {p.stem for p in SHIPPED}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
class TestShippedProfile:
    def test_loads_and_names_itself_after_its_file(self, path):
        p = load_profile(path)
        assert p.name == path.stem and 1 <= p.threads <= p.cores

    def test_every_figure_carries_its_source(self, path):
        text = path.read_text()
        if "asrcompress calibrate" in text.splitlines()[0]:
            assert "# source: every figure below is measured" in text  # calibrated: one source for all
            return
        for key in (*NUMBERS, *KERNELS):
            line = next(l for l in text.splitlines() if re.match(rf"\s*{key}:", l))
            assert "# source:" in line, f"{path.name}: {key} has no source comment"

    def test_only_the_host_is_measured(self, path):
        p = load_profile(path)
        assert p.measure == (p.calibration is not None)

    def test_the_predictor_runs_on_it(self, path, graphs):
        """An fp32, an int8 and a 4-bit graph each get a positive, finite predicted time (the
        int8 and 4-bit kernels run, or fall back to the fp32 figures, as the profile says)."""
        p = load_profile(path)
        ms = [predict_ms(ops, p)[0] for ops in graphs]
        assert all(0 < m < 1e6 for m in ms), ms


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """The operator costs of a tiny model's fp32, int8 and 4-bit exports at 2 s."""
    from asrcompress.compression import Policy, compress_model
    from asrcompress.export import export_onnx
    from asrcompress.hardware import graph_ops

    from ..compression.models import conformer

    base, tmp, out = conformer(), tmp_path_factory.mktemp("graphs"), []
    for name, rules in (("fp32", []), ("int8", [{"global": True, "quant": {"bits": 8}}]),
                        ("int4", [{"global": True, "quant": {"bits": 4}}])):
        model, states = base, {}
        if rules:
            model, states, _ = compress_model(base, Policy.from_dict({"version": 1, "rules": rules}))
        out.append(graph_ops(export_onnx(model, states, tmp / f"{name}.onnx")["path"], 2.0))
    return out


def _good() -> dict:
    return yaml.safe_load((REPO / "hardware_profiles" / "rpi4.yaml").read_text())


@pytest.mark.parametrize("change, needle", [
    (lambda d: d.pop("fp32_gflops"), "missing field 'fp32_gflops'"),
    (lambda d: d.update(mem_bandwidth_gbs=-5.5), "'mem_bandwidth_gbs' must be positive"),
    (lambda d: d.update(int8_gops=0), "'int8_gops' must be positive"),
    (lambda d: d.update(cores="four"), "'cores' must be a number"),
    (lambda d: d.update(threads=2.5), "'threads' must be a whole number"),
    (lambda d: d.update(threads=8), "'threads' (8) is more than 'cores' (4)"),
    (lambda d: d.update(turbo=True), "unknown field 'turbo'"),
    (lambda d: d["kernels"].pop("int4_matmul"), "field 'kernels' must map"),
    (lambda d: d.update(kernels={"int8_matmul": "yes", "int4_matmul": True, "sparse_matmul": False}),
     "field 'kernels' must map"),
    (lambda d: d.update(name=""), "'name' must be a non-empty string"),
    (lambda d: d.update(calibration={"matmul_fp64": {}}), "calibration class 'matmul_fp64'"),
    (lambda d: d.update(calibration={"conv": {"c0_us": -1, "c_flop_ns": 0, "c_weight_ns": 0, "c_act_ns": 0}}),
     "calibration.conv.c0_us must be a number >= 0"),
    (lambda d: d.update(calibration_factor=50), "'calibration_factor' must be a number in [0.2, 5]"),
    (lambda d: d.update(calibration_factors={"gpu": 1.0}), "calibration_factors group 'gpu' is not one of"),
    (lambda d: d.update(calibration_factors={"conv": 0.0}), "calibration_factors.conv must be a number in [0.2, 5]"),
    (lambda d: d.update(calibration_factors=[1.0]), "field 'calibration_factors' must map"),
])
def test_schema_errors_name_the_field(change, needle):
    doc = _good()
    change(doc)
    with pytest.raises(UserError) as e:
        parse_profile(doc, Path("bad.yaml"))
    assert needle in str(e.value) and str(e.value).startswith("bad.yaml: ")


def test_a_yaml_tag_that_builds_objects_is_refused(tmp_path):
    bad = tmp_path / "evil.yaml"
    bad.write_text("name: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(UserError, match="evil.yaml: not valid YAML"):
        load_profile(bad)


def test_cli_reports_a_bad_profile_in_one_line(tmp_path):
    bad = tmp_path / "neg.yaml"
    doc = _good()
    doc["op_overhead_us"] = -1
    bad.write_text(yaml.safe_dump(doc))
    assert_one_line_error(run("latency", "--model", str(tmp_path / "m.onnx"), "--profile", str(bad)),
                          "neg.yaml", "op_overhead_us")
    assert_one_line_error(run("latency", "--model", str(tmp_path / "m.onnx"), "--profile",
                              str(tmp_path / "none.yaml")), "none.yaml", "not found")
