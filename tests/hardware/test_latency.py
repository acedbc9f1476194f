"""The latency command (measured on the host, predicted elsewhere) and calibrate."""

import json

import pytest

from asrcompress.hardware import load_profile

from ..compression.models import conformer
from ..conftest import REPO
from ..test_cli import assert_one_line_error, run

KEYS = {"profile", "latency_ms", "rtf", "peak_mem_mb", "source", "per_length", "streaming"}


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    from asrcompress.export import export_onnx

    path = tmp_path_factory.mktemp("lat") / "tiny.onnx"
    export_onnx(conformer(), {}, path)
    return path


@pytest.mark.parametrize("profile, source", [("host", "measured"), ("rpi4", "predicted"),
                                             ("laptop_avx512_vnni", "predicted")])
def test_latency_json(tiny_onnx, profile, source):
    p = run("latency", "--model", str(tiny_onnx), "--profile", str(REPO / "hardware_profiles" / f"{profile}.yaml"),
            "--json", "--repeats", "3")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert KEYS <= set(d) and d["source"] == source and d["profile"] == profile
    assert set(d["per_length"]) == {"2s", "8s"}
    assert d["latency_ms"] == d["per_length"]["8s"]["latency_ms"] > d["per_length"]["2s"]["latency_ms"] > 0
    assert d["rtf"] == pytest.approx(d["latency_ms"] / 8000, rel=1e-3)
    assert d["peak_mem_mb"] > 0 and d["streaming"]["chunk_ms"] > 0


def test_slower_device_is_predicted_slower(tiny_onnx):
    from ..test_errors import run_cli  # in this process: no interpreter start per call

    def ms(name):
        code, out, err = run_cli(["latency", "--model", str(tiny_onnx), "--profile",
                                  str(REPO / "hardware_profiles" / f"{name}.yaml"), "--json"], tiny_onnx.parent)
        assert code == 0, err
        return json.loads(out)["latency_ms"]

    assert ms("rpi4") > ms("rpi5") > ms("laptop_avx512_vnni")


def test_latency_of_a_model_folder_exports_it_first(tmp_path):
    from asrcompress.models import save_model

    from ..test_errors import run_cli

    save_model(conformer(), tmp_path / "m")
    code, out, err = run_cli(["latency", "--model", str(tmp_path / "m"), "--profile",
                              str(REPO / "hardware_profiles" / "rpi5.yaml"), "--json"], tmp_path)
    assert code == 0, err
    assert json.loads(out)["source"] == "predicted"


def test_export_onnx_cli(tmp_path):
    from asrcompress.models import save_model

    from ..test_errors import one_error_line, run_cli  # in this process: no interpreter start per call

    save_model(conformer(), tmp_path / "m")
    code, out, err = run_cli(["export-onnx", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "m.onnx")], tmp_path)
    assert code == 0, err
    report = json.loads(out)
    assert (tmp_path / "m.onnx").stat().st_size == report["bytes"] > 0
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    for args, needle in ((["export-onnx", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "x.onnx")], "nope"),
                         (["latency", "--model", str(tmp_path / "missing.onnx"), "--profile",
                           str(REPO / "hardware_profiles" / "rpi4.yaml")], "missing.onnx"),
                         (["latency", "--model", str(tmp_path / "junk.onnx"), "--profile",
                           str(REPO / "hardware_profiles" / "host.yaml")], "junk.onnx")):
        assert needle in one_error_line(*run_cli(args, tmp_path)), args


def test_quick_calibration_writes_a_valid_measured_profile(tmp_path):
    out = tmp_path / "mine.yaml"
    p = run("calibrate", "--out", str(out), "--name", "mine", "--quick", "--no-reference")
    assert p.returncode == 0, p.stderr
    prof = load_profile(out)
    assert prof.measure and prof.name == "mine" and prof.threads == 1
    assert {"matmul_fp32", "matmul_int8", "matmul_int8_s8", "matmul_int4", "matmul_nbits2", "matmul_nbits8", "conv",
            "conv_pointwise", "conv_depthwise", "conv_grouped", "conv_grouped_1d", "layout", "elementwise", "run"
            } <= set(prof.calibration)
    assert prof.fp32_gflops > 1 and prof.mem_bandwidth_gbs > 0.1
    # both int8 paths timed at every MatMul shape of the grid (3 K x 3 N at one length when quick)
    rows = prof.int8_paths.measured
    assert len(rows) == 9 and {(k, n) for k, n, *_ in rows} == {(k, n) for k in (48, 144, 576) for n in (48, 144, 576)}
    assert all(u > 0 and s > 0 for *_, u, s in rows)
    assert out.read_text().startswith("# Produced by `asrcompress calibrate")


@pytest.mark.slow
def test_calibration_with_references_fits_a_factor_per_group(tmp_path):
    """The default calibrate: the eight reference models timed, one factor per group fitted.
    The references must move the groups' shares apart, or the groups could not be fitted (no
    timing is asserted: tests never time)."""
    from asrcompress.hardware import graph_ops
    from asrcompress.hardware._predict import group_sums
    from asrcompress.hardware._reference import REFERENCES, reference_models

    out = tmp_path / "mine.yaml"
    p = run("calibrate", "--out", str(out), "--name", "mine", "--quick")
    assert p.returncode == 0, p.stderr
    assert "whole-graph factors matmul" in " ".join(p.stdout.split())  # rich wraps the line
    prof = load_profile(out)
    assert set(prof.calibration_factors) == {"matmul", "conv", "other"}
    assert all(0.2 <= f <= 5 for f in prof.calibration_factors.values()) and "node" in prof.calibration
    paths = reference_models(tmp_path / "refs")
    assert [p.stem for p in paths] == [f"reference_{n}" for n in REFERENCES]
    shares = {}
    for path in paths:
        sums = group_sums(graph_ops(path, 8.0), prof)
        shares[path.stem] = {g: v / sum(sums.values()) for g, v in sums.items()}
    conv = {n: s["conv"] for n, s in shares.items()}
    assert conv["reference_separable_int7"] < 0.6 * conv["reference_fp32"]  # the front end's share falls
    assert shares["reference_depth4_ffn50_int4"]["matmul"] < shares["reference_int4"]["matmul"]


def test_calibrate_refuses_more_threads_than_cpus(tmp_path):
    assert_one_line_error(run("calibrate", "--out", str(tmp_path / "x.yaml"), "--threads", "999"), "--threads 999")




def test_export_onnx_takes_the_int8_path_of_the_profile_s_table(tmp_path):
    """8-bit layers: u8 x u8 by default; with --profile, the path its table picks per shape
    (s8 allowed there, as its calibration measured full-range s8 exact)."""
    from asrcompress.compression import Policy, compress_model, discover_layers
    from asrcompress.compression._io import write_compression
    from asrcompress.models import save_model

    policy = Policy.from_dict({"version": 1, "rules": [{"global": True, "quant": {"bits": 8}}]})
    model, states, _ = compress_model(conformer(), policy)
    save_model(model, tmp_path / "m")
    write_compression(tmp_path / "m", tmp_path / "m", policy, states, {})
    from ..test_errors import one_error_line, run_cli  # in this process: no interpreter start per call

    code, out, err = run_cli(["export-onnx", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "d.onnx")], tmp_path)
    assert code == 0, err
    labels = json.loads(out)["layers"]
    assert all("u8 x u8" in k for k in labels.values() if "Dynamic" in k)
    host = REPO / "hardware_profiles" / "host.yaml"
    code, out, err = run_cli(["export-onnx", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "h.onnx"),
                              "--profile", str(host)], tmp_path)
    assert code == 0, err
    paths = load_profile(host).int8_paths
    shapes = {layer.name: layer.shape for layer in discover_layers(model)}
    for name, label in json.loads(out)["layers"].items():
        if "Dynamic" in label:
            n, k = shapes[name][:2]
            want = "u8 x s8" if paths.signed(k, n, 8) else "u8 x u8"
            assert want in label, (name, label)
    line = one_error_line(*run_cli(["export-onnx", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "x.onnx"),
                                    "--profile", "rpi4"], tmp_path))
    assert "rpi4.yaml" in line


def test_the_s8_probe_tells_a_saturating_kernel_from_an_exact_one():
    """A kernel that clips each int16 pair sum (u8 x s8 without VNNI) misses the probe's exact
    product by far more than the tolerance; ORT here must match either the exact product (VNNI)
    or the saturated one, nothing else."""
    import numpy as np
    import onnxruntime as ort

    from asrcompress.hardware._calibrate import s8_full_range_exact, s8_probe

    model, x, q, exact = s8_probe()
    w = np.full((q.shape[1], exact.shape[1]), 127.0)
    for order in (np.arange(q.shape[1]), np.random.default_rng(0).permutation(q.shape[1])):  # any pairing
        prods = (q[0, order, None] * w[order]).reshape(-1, 2, w.shape[1]).sum(axis=1)  # (pairs, N)
        saturated = np.clip(prods, -32768, 32767).sum(axis=0) / 255 * 1e-2
        assert not np.allclose(saturated, exact[0], rtol=1e-3, atol=1e-3)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": x})[0][0]
    saturated = np.clip((q[0, :, None] * w).reshape(-1, 2, w.shape[1]).sum(axis=1), -32768, 32767).sum(axis=0) / 255e2
    assert np.allclose(got, exact[0], rtol=1e-3) or np.allclose(got, saturated, rtol=1e-2)
    assert s8_full_range_exact(1) == bool(np.allclose(got, exact[0], rtol=1e-3, atol=1e-3))
