"""Graph costs against their formulas, the predictor's two models, and what it must not credit."""

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from asrcompress.hardware import Op, Profile, frames_for, graph_ops, op_us, predict_ms

F = TensorProto.FLOAT


def _profile(**kw) -> Profile:
    base = dict(name="t", description="t", cores=4, threads=4, fp32_gflops=10.0, int8_gops=40.0, int4_gops=20.0,
                mem_bandwidth_gbs=5.0, op_overhead_us=2.0,
                kernels={"int8_matmul": True, "int4_matmul": True, "sparse_matmul": False})
    base.update(kw)
    return Profile(**base)


def test_roofline_takes_the_slower_of_compute_and_memory():
    p = _profile()
    compute_bound = Op("a", "MatMul", "matmul_fp32", flops=1e6, weight_bytes=100, act_bytes=100)
    assert op_us(compute_bound, p) == pytest.approx(1e6 / 10e3 + 2.0)  # 10 GFLOP/s = 1e4 flop/us
    memory_bound = Op("b", "Add", "elementwise", flops=0, weight_bytes=0, act_bytes=5e6)
    assert op_us(memory_bound, p) == pytest.approx(5e6 / 5e3 + 2.0)


def test_low_bit_matmul_without_its_kernel_runs_at_fp32_speed():
    op = Op("a", "DynamicQuantizeMatMul", "matmul_int8", flops=4e6, weight_bytes=10, act_bytes=10)
    assert op_us(op, _profile()) == pytest.approx(4e6 / 40e3 + 2.0)
    no_kernel = _profile(kernels={"int8_matmul": False, "int4_matmul": True, "sparse_matmul": False})
    assert op_us(op, no_kernel) == pytest.approx(4e6 / 10e3 + 2.0)


def test_calibrated_classes_use_their_coefficients_and_the_factor():
    cal = {"matmul_fp32": {"c0_us": 3.0, "c_flop_ns": 0.01, "c_weight_ns": 0.1, "c_act_ns": 0.2},
           "run": {"c0_us": 10.0, "c_flop_ns": 0.0, "c_weight_ns": 0.0, "c_act_ns": 0.0}}
    p = _profile(calibration=cal, calibration_factor=1.5)
    op = Op("a", "MatMul", "matmul_fp32", flops=1e6, weight_bytes=1e3, act_bytes=2e3)
    want_us = 3.0 + 0.01 * 1e3 + 0.1 * 1.0 + 0.2 * 2.0
    assert op_us(op, p) == pytest.approx(want_us)
    total, _ = predict_ms([op], p)
    assert total == pytest.approx((want_us + 10.0) / 1e3 * 1.5)


def _matmul_graph(path, m, k, n):
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((k, n)).astype(np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
                          "g", [helper.make_tensor_value_info("x", F, [m, k])],
                          [helper.make_tensor_value_info("z", F, [m, n])], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]), str(path))


@pytest.mark.parametrize("m, k, n", [(7, 16, 33), (50, 144, 576)])
def test_matmul_costs_follow_the_formula(tmp_path, m, k, n):
    _matmul_graph(tmp_path / "g.onnx", m, k, n)
    ops = graph_ops(tmp_path / "g.onnx", feeds={"x": np.zeros((m, k), np.float32)})
    mm = next(o for o in ops if o.cls == "matmul_fp32")
    assert mm.flops == 2 * m * k * n and mm.weight_bytes == 4 * k * n
    assert mm.act_bytes == 4 * (m * k + m * n)


def test_frames_for_reference_lengths():
    assert frames_for(2.0) == 201 and frames_for(8.0) == 801


def test_unstructured_sparsity_predicts_no_speedup(tmp_path):
    from asrcompress.compression import Policy, compress_model
    from asrcompress.export import export_onnx

    from ..compression.models import conformer

    base = conformer()
    sparse, states, _ = compress_model(base, Policy.from_dict(
        {"version": 1, "rules": [{"global": True, "prune": {"sparsity": 0.7}}]}))
    p = _profile()
    dense_ms = predict_ms(graph_ops(export_onnx(base, {}, tmp_path / "d.onnx")["path"], 2.0), p)[0]
    sparse_ms = predict_ms(graph_ops(export_onnx(sparse, states, tmp_path / "s.onnx")["path"], 2.0), p)[0]
    assert sparse_ms == pytest.approx(dense_ms, rel=1e-9)


class TestKernelClasses:
    """Each kernel path has its own cost class, read off the graph ORT runs."""

    @pytest.fixture(scope="class")
    def classes(self, tmp_path_factory):
        from asrcompress.compression import Policy, compress_model
        from asrcompress.export import Int8Paths, export_onnx

        from ..compression.models import conformer

        tmp, base, out = tmp_path_factory.mktemp("classes"), conformer(), {}
        cases = {"u8": ([{"global": True, "quant": {"bits": 7}}], Int8Paths(force="u8")),
                 "s8": ([{"global": True, "quant": {"bits": 7}}], Int8Paths(force="s8")),
                 "nbits2": ([{"global": True, "quant": {"bits": 2, "group": 32}}], None),
                 "nbits4": ([{"global": True, "quant": {"bits": 4, "group": 64}}], None),
                 "nbits8": ([{"global": True, "quant": {"bits": 8, "group": 32}}], None),
                 "separable1": ([{"name": "subsampling.conv2", "separable": {"multiplier": 1, "fit": "weights"}}],
                                None),
                 "separable2": ([{"name": "subsampling.conv2", "separable": {"multiplier": 2, "fit": "weights"}}],
                                None)}
        for name, (rules, paths) in cases.items():
            model, states, _ = compress_model(base, Policy.from_dict({"version": 1, "rules": rules}))
            path = export_onnx(model, states, tmp / f"{name}.onnx", int8_paths=paths)["path"]
            out[name] = {op.cls for op in graph_ops(path, 2.0)}
        return out

    def test_int8_paths(self, classes):
        assert "matmul_int8" in classes["u8"] and "matmul_int8_s8" not in classes["u8"]
        assert "matmul_int8_s8" in classes["s8"] and "matmul_int8" not in classes["s8"]

    def test_matmul_nbits_widths(self, classes):
        assert "matmul_nbits2" in classes["nbits2"] and "matmul_int4" in classes["nbits4"]
        assert "matmul_nbits8" in classes["nbits8"]

    def test_separable_front_end(self, classes):
        """Its 1x1 pointwise conv, and its depthwise 3x3 conv: on ORT's NCHWc depthwise kernel
        with one filter per channel, on the generic grouped path with two. The conv module's
        1-D depthwise conv is on the generic path in both."""
        for name in ("separable1", "separable2"):
            assert {"conv", "conv_pointwise", "conv_grouped_1d"} <= classes[name], name
        assert "conv_depthwise" in classes["separable1"] and "conv_grouped" not in classes["separable1"]
        assert "conv_grouped" in classes["separable2"] and "conv_depthwise" not in classes["separable2"]
        assert "layout" in classes["separable2"]  # leaving the NCHWc chain and re-entering it


def test_a_class_a_profile_never_calibrated_is_priced_as_its_kin():
    cal = {"matmul_int8": {"c0_us": 3.0, "c_flop_ns": 0.01, "c_weight_ns": 0.0, "c_act_ns": 0.0}}
    p = _profile(calibration=cal)
    s8 = Op("a", "DynamicQuantizeMatMul", "matmul_int8_s8", flops=1e6, weight_bytes=0, act_bytes=0)
    assert op_us(s8, p) == pytest.approx(3.0 + 10.0)


def _cal(**classes) -> dict:
    zero = {"c0_us": 0.0, "c_flop_ns": 0.0, "c_weight_ns": 0.0, "c_act_ns": 0.0}
    return {"run": {**zero, "c0_us": 10.0}, **{k: {**zero, "c0_us": v} for k, v in classes.items()}}


def test_group_factors_scale_each_group_alone():
    ops = [Op("m", "MatMul", "matmul_fp32", 0, 0, 0), Op("c", "Conv", "conv_depthwise", 0, 0, 0),
           Op("l", "ReorderInput", "layout", 0, 0, 0), Op("e", "Add", "elementwise", 0, 0, 0)]
    cal = _cal(matmul_fp32=100.0, conv_depthwise=40.0, layout=20.0, elementwise=5.0)
    cal["node"] = {"c0_us": 1.0, "c_flop_ns": 0.0, "c_weight_ns": 0.0, "c_act_ns": 0.0}
    p = _profile(calibration=cal, calibration_factor=9.0, calibration_factors={"matmul": 2.0, "conv": 0.5, "other": 1.5})
    total, share = predict_ms(ops, p)
    # (2 x 100 + 0.5 x (40 + 20) + 1.5 x (5 + one run call of 10) + 1 us x 4 operators) / 1000
    assert total == pytest.approx((200 + 30 + 22.5 + 4) / 1e3)
    assert share["conv_depthwise"] == pytest.approx(0.02) and share["matmul_fp32"] == pytest.approx(0.2)
    # A group the profile does not name takes its one factor.
    partial = _profile(calibration=cal, calibration_factor=3.0, calibration_factors={"conv": 1.0})
    assert predict_ms(ops, partial)[0] == pytest.approx((300 + 60 + 45 + 4) / 1e3)


@given(st.tuples(*[st.floats(0.4, 3.0)] * 3), st.floats(0.0, 5.0), st.integers(0, 2**31 - 1))
@settings(max_examples=40, deadline=None)
def test_solve_factors_recovers_the_factors_that_made_the_timings(true, per_node, seed):
    from asrcompress.hardware._reference import solve_factors

    rng = np.random.default_rng(seed)
    a = np.column_stack([rng.uniform(0.5, 20, (16, 3)), rng.uniform(0.2, 1.0, 16)])  # ms per group, ops / 1000
    y = a @ np.array([*true, per_node])
    groups, node = solve_factors(a, y)
    assert [groups[g] for g in ("matmul", "conv", "other")] == pytest.approx(list(true), rel=1e-6)
    assert node == pytest.approx(per_node, abs=1e-6)


def test_solve_factors_takes_one_factor_when_the_references_do_not_separate_the_groups():
    from asrcompress.hardware._reference import solve_factors

    shares = np.array([[0.5, 0.3, 0.2]])
    totals = np.array([5.0, 10.0, 20.0, 40.0])
    a = np.column_stack([totals[:, None] * shares, np.full(4, 0.5)])  # every model the same mix
    groups, node = solve_factors(a, 1.3 * totals + 0.5)
    assert list(groups.values()) == pytest.approx([1.3] * 3) and node == pytest.approx(1.0)
    one, _ = solve_factors(np.column_stack([np.eye(3) * 5 + 1, np.ones(3)]), np.array([9.0, 7.0, 8.0]), grouped=False)
    assert len(set(one.values())) == 1


def test_the_reference_policies_apply_to_the_default_model():
    import torch

    from asrcompress.compression import Policy, compress_model
    from asrcompress.hardware._reference import REFERENCE_FAMILY, REFERENCES, reference_policy
    from asrcompress.models import architecture

    torch.manual_seed(0)
    base = architecture(REFERENCE_FAMILY).build({}).eval()
    for name, (_, drop) in REFERENCES.items():
        doc = reference_policy(name)
        if doc is None:  # fp32: the model as built
            continue
        model, _, _ = compress_model(base, Policy.from_dict(doc))
        # A dropped block is bypassed: its module holds no parameters.
        kept = sum(any(True for _ in b.parameters()) for b in model.encoder.conformer_layers)
        assert kept == base.cfg.num_layers - len(drop), name


def test_every_calibrated_class_has_exactly_one_factor_group():
    from asrcompress.hardware import CLASSES
    from asrcompress.hardware._profile import FACTOR_GROUPS

    grouped = [c for classes in FACTOR_GROUPS.values() for c in classes]
    assert sorted(grouped) == sorted(set(CLASSES) - {"run", "node"})  # run: `other`; node: per operator
