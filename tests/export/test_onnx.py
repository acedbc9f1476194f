"""ONNX export of every method and of combinations: kernels, output tolerance, dynamic time axis."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import onnx
import pytest
import torch
from hypothesis import given, settings, strategies as st

from asrcompress.compression import Policy, compress_model
from asrcompress.export import DeployModel, export_onnx, session

from ..compression.models import conformer

# Output tolerance (log-probabilities, max abs): weights are written exactly, so fp32 and
# 4-bit graphs agree to float rounding. int8 layers also quantize activations at run time.
EXACT_TOL = 1e-3
INT8_MEAN_TOL = 0.05

CASES = {
    "fp32": [],
    "prune": [{"global": True, "prune": {"sparsity": 0.5}}],
    "quant8": [{"global": True, "quant": {"bits": 8}}],
    "quant6": [{"global": True, "quant": {"bits": 6}}],
    "quant4": [{"global": True, "quant": {"bits": 4}}],
    "quant2": [{"global": True, "quant": {"bits": 2}}],
    "quant_log": [{"global": True, "quant": {"bits": 4, "kind": "log"}}],
    "quant_conv": [{"pattern": "subsampling.conv*", "quant": {"bits": 6}}],
    "lowrank": [{"pattern": "encoder.*.ffn*", "lowrank": {"rank_fraction": 0.5}}],
    "cluster": [{"global": True, "cluster": {"clusters": 8}}],
    "structured": [{"pattern": "encoder.*.ffn*.sequential.1", "structured": {"ratio": 0.5}},
                   {"pattern": "encoder.*.conv_module.sequential.0", "structured": {"ratio": 0.25}},
                   {"pattern": "encoder.*.self_attn.in_proj", "structured": {"ratio": 0.5}}],
    "combined": [{"global": True, "quant": {"bits": 4}},
                 {"pattern": "encoder.*.ffn*", "prune": {"sparsity": 0.5}, "lowrank": {"rank_fraction": 0.5}},
                 {"pattern": "encoder.*.self_attn.*", "quant": {"bits": 8}},
                 {"pattern": "encoder.*.conv_module.sequential.0", "structured": {"ratio": 0.5}},
                 {"name": "head", "cluster": {"clusters": 16}}],
}


def _compressed(rules):
    base = conformer()
    if not rules:
        return base, {}
    model, states, _ = compress_model(base, Policy.from_dict({"version": 1, "rules": rules}))
    return model, states


def _ops(path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in onnx.load(str(path)).graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = {}
    root = tmp_path_factory.mktemp("onnx")
    for name, rules in CASES.items():
        model, states = _compressed(rules)
        report = export_onnx(model, states, root / f"{name}.onnx")
        out[name] = (model, states, report)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_outputs_match_pytorch_at_several_lengths(exported, name):
    model, _, report = exported[name]
    sess = session(report["path"])
    torch.manual_seed(0)
    for frames in (64, 201, 333):  # one export, any length: the time axis is dynamic
        feats = torch.randn(1, frames, 80)
        with torch.no_grad():
            want = model(feats, torch.tensor([frames]))[0].numpy()
        got = sess.run(None, {"feats": feats.numpy()})[0]
        assert got.shape == want.shape == (1, ((frames - 1) // 2 - 1) // 2, 29)
        diff = np.abs(got - want)
        if any(k.startswith("int8") for k in report["layers"].values()):
            assert diff.mean() < INT8_MEAN_TOL and (got.argmax(-1) == want.argmax(-1)).mean() > 0.9
        else:
            assert diff.max() < EXACT_TOL


def test_kernels_follow_the_bits(exported):
    ops = {name: _ops(rep["path"]) for name, (_, _, rep) in exported.items()}
    for name in ("fp32", "prune", "cluster", "quant_log", "lowrank", "structured"):
        assert "DynamicQuantizeMatMul" not in ops[name] and "MatMulNBits" not in ops[name], name
    # Every Linear and pointwise conv runs on the low-bit kernel; depthwise and 2-D convs stay fp32.
    model, states, rep = exported["quant8"]
    matmul_layers = [n for n, k in rep["layers"].items() if k.startswith("int8")]
    assert ops["quant8"]["DynamicQuantizeMatMul"] == len(matmul_layers) > 0
    assert ops["quant6"]["DynamicQuantizeMatMul"] == len(matmul_layers)
    assert ops["quant4"]["MatMulNBits"] == ops["quant2"]["MatMulNBits"] == len(matmul_layers)
    assert all(k.startswith("fp32") for n, k in rep["layers"].items() if "depthwise" in n or "conv1" in n
               or "conv2" in n or n.endswith("sequential.2"))
    combined = exported["combined"][2]["layers"].values()
    assert any(k.startswith("int8 DynamicQuantizeMatMul") for k in combined)
    assert any(k.startswith("int4 MatMulNBits") for k in combined)


def test_quantized_conv_weights_are_stored_as_int8_codes(exported):
    """The 2-D convs compute in fp32, but the file holds their int8 codes and scales, not fp32."""
    model, _, rep = exported["quant_conv"]
    proto = onnx.load(rep["path"])
    assert "DequantizeLinear" not in _ops(rep["path"])  # ORT would not fold it (see export/_kernels.py)
    # ORT folds the codes' Cast and Mul at session start: the conv runs on a constant fp32 weight
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(Path(rep["path"]).with_suffix(".opt.onnx"))
    ort.InferenceSession(rep["path"], so, providers=["CPUExecutionProvider"])
    opt = onnx.load(so.optimized_model_filepath)
    consts = {i.name for i in opt.graph.initializer}
    convs = [n for n in opt.graph.node if "Conv" in n.op_type]
    assert convs and all(n.input[1] in consts for n in convs)
    stored = {i.name: i.data_type for i in proto.graph.initializer if i.name.startswith("subsampling.conv")
              and i.name.endswith(".weight")}
    assert not stored, stored  # no fp32 conv weight is stored
    codes = {i.name: i.data_type for i in proto.graph.initializer if i.name.endswith("qweight8")}
    assert len(codes) == 2 and all(t == onnx.TensorProto.INT8 for t in codes.values()), codes
    assert rep["layers"]["subsampling.conv2"].startswith("fp32 Conv on int8-stored weights")
    codes = onnx.numpy_helper.to_array(next(i for i in proto.graph.initializer if i.name == "subsampling.conv2.qweight8"))
    assert np.abs(codes).max() <= 2 ** 5 - 1  # 6-bit codes in an int8 container
    fp32 = _tensor_bytes(exported["fp32"][2]["path"])
    saved = (model.subsampling.conv1.weight.numel() + model.subsampling.conv2.weight.numel()) * 3
    assert _tensor_bytes(rep["path"]) < fp32 - 0.9 * saved


def test_quantized_exports_store_scales_biases_and_norms_in_fp16(exported):
    def by_type(name):
        proto = onnx.load(exported[name][2]["path"])
        casts = {n.input[0] for n in proto.graph.node if n.op_type == "Cast"}
        return proto, [i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16], casts

    _, fp16, _ = by_type("fp32")
    assert not fp16  # an uncompressed export is left as it is
    for name in ("quant8", "quant4"):
        proto, fp16, casts = by_type(name)
        names = {i.name for i in fp16}
        assert all(i.name in casts for i in fp16)  # each is cast back to fp32 for the kernels
        assert any(n.endswith(".scale.fp16") or n.endswith(".scale4.fp16") for n in names), name
        assert any(n.endswith("bias.fp16") for n in names), name
        left = [i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT and len(i.dims) == 1
                and i.dims[0] > 1 and any(k in i.name for k in ("norm", "bias"))]
        exact = [i.name for i in left if np.array_equal(
            onnx.numpy_helper.to_array(i).astype(np.float16).astype(np.float32), onnx.numpy_helper.to_array(i))]
        assert not exact, exact  # every fp16-exact one was stored as fp16


def test_unstructured_sparsity_is_not_run_as_a_different_graph(exported):
    assert _ops(exported["prune"][2]["path"]) == _ops(exported["fp32"][2]["path"])
    assert all("not run faster" in k for k in exported["prune"][2]["layers"].values())


def _tensor_bytes(path) -> int:
    """The tensors the file stores (on the tiny model the graph's own protobuf is most of the file)."""
    return sum(onnx.numpy_helper.to_array(i).nbytes for i in onnx.load(str(path)).graph.initializer)


def test_low_bit_graphs_store_fewer_bytes(exported):
    fp32, q8, q4 = (_tensor_bytes(exported[n][2]["path"]) for n in ("fp32", "quant8", "quant4"))
    assert q8 < 0.35 * fp32  # int8 codes, fp16 scales and biases
    assert q4 < 0.65 * q8


def test_exports_carry_no_exporter_trace_or_local_paths(exported):
    """torch's exporter writes each node's stack trace (with this machine's source paths), FX
    node and scopes into the graph: about 0.8 MB a model, stripped before the file is written."""
    import asrcompress

    here = str(Path(asrcompress.__file__).resolve().parents[1]).encode()
    for name, (_, _, report) in exported.items():
        proto = onnx.load(report["path"])
        assert not any(n.metadata_props or n.doc_string for n in proto.graph.node), name
        data = Path(report["path"]).read_bytes()
        assert here not in data and b"stack_trace" not in data, name
        # what is left beside the tensors is the graph itself: names, attributes, shapes
        assert len(data) - _tensor_bytes(report["path"]) < 50_000 + 400 * len(proto.graph.node), name


def test_deploy_model_matches_the_batched_model():
    model = conformer()
    feats = torch.randn(1, 150, 80)
    with torch.no_grad():
        want = model(feats, torch.tensor([150]))[0]
        got = DeployModel(model)(feats)
    assert torch.allclose(got, want, atol=1e-5)


def test_other_model_families_are_refused(tmp_path):
    from asrcompress.errors import UserError

    from ..compression.models import lstm

    with pytest.raises(UserError, match="LSTMCTC: no registered model family"):
        export_onnx(lstm(), None, tmp_path / "x.onnx")


class TestStaticActivations:
    """int8 layers with activation ranges measured on calibration features (static PTQ)."""

    @pytest.fixture(scope="class")
    def static(self, tmp_path_factory):
        model, states = _compressed(CASES["quant8"])
        torch.manual_seed(1)
        feats = [torch.randn(1, t, model.cfg.n_mels).numpy() for t in (120, 200, 90)]
        path = tmp_path_factory.mktemp("static") / "static.onnx"
        return model, feats, export_onnx(model, states, path, calibration=feats)

    def test_runs_on_fixed_ranges(self, static):
        _, _, rep = static
        ops = _ops(rep["path"])
        assert "DynamicQuantizeMatMul" not in ops and "DynamicQuantizeLinear" not in ops
        static_layers = [n for n, k in rep["layers"].items() if "static activation range" in k]
        assert static_layers and ops["MatMulIntegerToFloat"] == ops["QuantizeLinear"] == len(static_layers)

    def test_scale_is_the_calibration_range_over_255(self, static):
        model, feats, rep = static
        proto = onnx.load(rep["path"])
        inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
        deploy = DeployModel(model).eval()
        seen = []
        hook = deploy.net.head.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
        with torch.no_grad():
            for f in feats:
                deploy(torch.from_numpy(f))
        hook.remove()
        lo = min(0.0, min(float(a.min()) for a in seen))
        hi = max(0.0, max(float(a.max()) for a in seen))
        assert float(inits["head.ascale"]) == pytest.approx((hi - lo) / 255, rel=1e-5)
        assert int(inits["head.azero"]) == round(-lo / ((hi - lo) / 255))

    def test_no_calibration_utterances_is_a_clear_error(self, tmp_path):
        from asrcompress.errors import UserError

        model, states = _compressed(CASES["quant8"])
        with pytest.raises(UserError, match="at least one calibration utterance"):
            export_onnx(model, states, tmp_path / "x.onnx", calibration=[])


@settings(max_examples=50, deadline=None)
@given(st.floats(-100, 100), st.floats(0, 100))
def test_uint8_activation_grid_holds_zero_exactly_and_covers_the_range(lo, width):
    from asrcompress.export._static import uint8_params

    hi = lo + width
    scale, zero = uint8_params(lo, hi)
    assert 0 <= int(zero) <= 255 and scale > 0
    # 0 maps to the integer zero point exactly (padding and ReLU zeros stay zero)
    assert np.float32(0) / scale + zero == int(zero)
    for v in (min(lo, 0.0), max(hi, 0.0)):
        q = np.clip(np.rint(v / scale) + int(zero), 0, 255)
        assert abs((q - int(zero)) * scale - v) <= scale / 2 + 1e-6 * max(1.0, abs(v))


def test_verification_passes_the_int8_graph_and_refuses_another_model_s(exported):
    """The export's own check: the int8 graph matches its model within the int8 tolerance, and
    the same graph checked against a differently initialised model is refused."""
    from asrcompress.export._onnx import _verify

    model, _, rep = exported["quant8"]
    _verify(model, Path(rep["path"]), int8=True)
    import copy

    other = copy.deepcopy(model)
    with torch.no_grad():  # every weight moved by noise about its own size: another model
        for p in other.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * p.std().nan_to_num(0.1))
    with pytest.raises(RuntimeError, match="does not match PyTorch"):
        _verify(other, Path(rep["path"]), int8=True)
