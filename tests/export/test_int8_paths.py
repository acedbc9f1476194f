"""The int8 kernel choice: u8 x u8 or u8 x s8 per layer shape, from a measured table."""

import numpy as np
import onnx
import pytest
import torch
from hypothesis import given, settings, strategies as st

from asrcompress.compression import Policy, compress_model
from asrcompress.errors import UserError
from asrcompress.export import Int8Paths, default_int8_paths, export_onnx, parse_int8_paths, session

from ..compression.models import conformer

# s8 wins at K=144 at both lengths; u8 wins at K=576 (summed over T)
TABLE = ((144, 144, 49, 10.0, 6.0), (144, 144, 199, 30.0, 20.0),
         (576, 144, 49, 10.0, 12.0), (576, 144, 199, 40.0, 41.0))


class TestChoice:
    def test_the_faster_path_at_the_nearest_shape(self):
        paths = Int8Paths(TABLE)
        assert paths.signed(144, 144, 7) and paths.signed(160, 130, 6)  # nearest (144, 144)
        assert not paths.signed(576, 144, 7) and not paths.signed(700, 150, 5)  # nearest (576, 144)

    def test_sums_over_lengths(self):
        # faster at T=49 by 2 us, slower at T=199 by 10 us: u8 overall
        paths = Int8Paths(((144, 144, 49, 10.0, 8.0), (144, 144, 199, 30.0, 40.0)))
        assert not paths.signed(144, 144, 7)

    def test_eight_bits_take_s8_only_where_full_range_is_exact(self):
        assert not Int8Paths(TABLE).signed(144, 144, 8)
        assert Int8Paths(TABLE, s8_full_range_exact=True).signed(144, 144, 8)
        assert not Int8Paths(TABLE, force="s8").signed(144, 144, 8)

    def test_no_table_keeps_the_rule_by_bits(self):
        assert Int8Paths().signed(144, 144, 7) and not Int8Paths().signed(144, 144, 8)

    def test_force(self):
        assert not Int8Paths(TABLE, force="u8").signed(144, 144, 7)
        assert Int8Paths(TABLE, force="s8").signed(576, 144, 7)
        with pytest.raises(ValueError):
            Int8Paths(force="s16")

    @settings(max_examples=40, deadline=None)
    @given(rows=st.lists(st.tuples(st.sampled_from([16, 144, 576]), st.sampled_from([48, 288]),
                                   st.sampled_from([49, 199]), st.floats(0.1, 100), st.floats(0.1, 100)),
                         min_size=1, max_size=8),
           k=st.integers(1, 4000), n=st.integers(1, 4000), bits=st.integers(5, 7))
    def test_never_full_range_s8_unless_measured_exact(self, rows, k, n, bits):
        paths = Int8Paths(tuple(rows))
        assert not paths.signed(k, n, 8)
        # the choice is the table's own at a shape it measured
        mine = [r for r in rows if (r[0], r[1]) == (k, n)]
        if mine:
            assert paths.signed(k, n, bits) == (sum(r[4] for r in mine) <= sum(r[3] for r in mine))

    def test_default_drops_the_measured_machine_s_full_range_flag(self):
        assert default_int8_paths().s8_full_range_exact is False

    def test_round_trip_and_errors_name_the_item(self):
        paths = Int8Paths(TABLE, True)
        assert parse_int8_paths(paths.to_dict(), "p.yaml") == paths
        with pytest.raises(UserError, match=r"p.yaml: int8_paths.measured\[1\]"):
            parse_int8_paths({"s8_full_range_exact": False, "measured": [[1, 2, 3, 4, 5], [1, 2, 3.5, 4, 5]]},
                             "p.yaml")
        with pytest.raises(UserError, match="s8_full_range_exact"):
            parse_int8_paths({"measured": []}, "p.yaml")


def _weights_of(path) -> dict[str, np.dtype]:
    """The dtype of each DynamicQuantizeMatMul's weight."""
    proto = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    return {n.name: inits[n.input[1]].dtype for n in proto.graph.node if n.op_type == "DynamicQuantizeMatMul"}


@pytest.mark.parametrize("force, dtype", [("u8", np.uint8), ("s8", np.int8)])
def test_export_writes_the_chosen_path_and_matches_pytorch(tmp_path, force, dtype):
    model, states, _ = compress_model(conformer(), Policy.from_dict(
        {"version": 1, "rules": [{"global": True, "quant": {"bits": 7}}]}))
    rep = export_onnx(model, states, tmp_path / "m.onnx", int8_paths=Int8Paths(force=force))
    weights = _weights_of(rep["path"])
    assert weights and set(weights.values()) == {np.dtype(dtype)}
    assert all(("u8 x s8" if force == "s8" else "u8 x u8") in k for k in rep["layers"].values() if "Dynamic" in k)
    feats = torch.randn(1, 201, 80)
    with torch.no_grad():
        want = model(feats, torch.tensor([201]))[0].numpy()
    got = session(rep["path"]).run(None, {"feats": feats.numpy()})[0]
    assert np.abs(got - want).mean() < 0.05 and (got.argmax(-1) == want.argmax(-1)).mean() > 0.9


def test_export_follows_the_table_per_layer(tmp_path):
    """With a table where s8 wins only at K=32, the layers nearest K=32 take s8 and the rest u8."""
    model, states, _ = compress_model(conformer(), Policy.from_dict(
        {"version": 1, "rules": [{"global": True, "quant": {"bits": 7}}]}))
    ks = (8, 32, 256)  # the tiny model has K in {32, 64, 608}: no K sits halfway between two
    table = Int8Paths(tuple((k, n, t, 10.0, 5.0 if k == 32 else 20.0) for k in ks for n in (16, 144) for t in (49,)))
    rep = export_onnx(model, states, tmp_path / "m.onnx", int8_paths=table)
    proto = onnx.load(rep["path"])
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    seen = set()
    for n in proto.graph.node:
        if n.op_type == "DynamicQuantizeMatMul":
            w = inits[n.input[1]]  # (K, N)
            nearest_k = min(ks, key=lambda k: abs(np.log(k / w.shape[0])))
            assert (w.dtype == np.int8) == (nearest_k == 32), (n.name, w.shape)
            seen.add(w.dtype)
    assert seen == {np.dtype(np.int8), np.dtype(np.uint8)}
