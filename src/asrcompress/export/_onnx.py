"""Export a (compressed) Conformer-CTC to ONNX with a dynamic time axis.

The fp32 graph comes from torch's dynamo exporter (the TorchScript exporter bakes the time
length into the attention reshapes). Then every MatMul whose constant weight equals a
linearly quantized layer's weights is swapped for the int8 or 4-bit kernel (`_kernels`).
Weights are matched by value, so the swap does not depend on the exporter's names.
Unstructured sparsity, clustering and log quantization stay dense fp32 here: no kernel runs
them faster, and `inspect` counts their storage savings instead.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from ..compression._apply import LayerState, layer_tensors
from ..compression._layers import discover_layers
from ..errors import UserError
from ..models._conformer_ctc import ConformerCTC
from ._deploy import DeployModel
from ._kernels import as_grid, int8_matmul, nbits_matmul

OPSET = 18
MAX_FRAMES = 100_000  # 1000 s of audio


def _fp32_onnx(model: ConformerCTC, path: Path) -> None:
    deploy = DeployModel(model).eval()
    feats = torch.randn(1, 301, model.cfg.n_mels)
    t = torch.export.Dim("T", min=16, max=MAX_FRAMES)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(deploy, (feats,), dynamo=True, dynamic_shapes={"feats": {1: t}},
                                    input_names=["feats"], output_names=["logprobs"], opset_version=OPSET,
                                    optimize=True, verbose=False)
        program.save(str(path))


def _key(a: np.ndarray) -> tuple:
    a = np.ascontiguousarray(a, dtype=np.float32)
    return a.shape, a.tobytes()


def _quantized_weights(model: ConformerCTC, states: dict[str, LayerState]) -> dict[tuple, tuple[str, str, int]]:
    """(K, N) weight value key -> (node name, layer name, bits) for linearly quantized layers.
    A low-rank layer has two tensors, so two nodes."""
    out = {}
    for layer in discover_layers(model):
        st = states.get(layer.name)
        if st is None or not st.bits or st.quant_kind != "linear":
            continue
        tensors = layer_tensors(model, layer, st)
        for part, t in zip(("first", "second") if len(tensors) == 2 else ("",), tensors):
            w2d = t.detach().reshape(t.shape[0], -1).numpy()
            out[_key(w2d.T)] = (f"{layer.name}.{part}" if part else layer.name, layer.name, st.bits)
    return out


def _constant(graph: onnx.GraphProto, name: str, inits: dict, producers: dict) -> np.ndarray | None:
    if name in inits:
        return numpy_helper.to_array(inits[name])
    node = producers.get(name)
    if node is not None and node.op_type == "Transpose" and node.input[0] in inits:
        return numpy_helper.to_array(inits[node.input[0]]).T
    return None


def _rewrite(proto: onnx.ModelProto, wanted: dict[tuple, tuple[str, str, int]], accuracy_level: int,
             ) -> dict[str, str]:
    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    kernels: dict[str, str] = {}
    new_nodes, new_inits = [], []
    for node in graph.node:
        b = None
        if node.op_type == "MatMul":
            b = _constant(graph, node.input[1], inits, producers)
        elif node.op_type == "Gemm":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if attrs.get("transA", 0) == 0 and attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0:
                b = _constant(graph, node.input[1], inits, producers)
                if b is not None and attrs.get("transB", 0):
                    b = b.T
        hit = wanted.get(_key(b)) if b is not None and b.ndim == 2 else None
        grid = as_grid(b.T, hit[2]) if hit else None
        if grid is None:
            new_nodes.append(node)
            continue
        name, layer_name, bits = hit
        y = node.output[0] + ("_nobias" if node.op_type == "Gemm" and len(node.input) > 2 else "")
        if bits <= 4:
            nodes, tensors = nbits_matmul(name, node.input[0], y, grid, accuracy_level)
        else:
            nodes, tensors = int8_matmul(name, node.input[0], y, grid)
        if y != node.output[0]:
            nodes.append(helper.make_node("Add", [y, node.input[2]], [node.output[0]], name=f"{name}.bias"))
        new_nodes += nodes
        new_inits += tensors
        kernels[layer_name] = "int4 MatMulNBits" if bits <= 4 else "int8 DynamicQuantizeMatMul"
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(new_inits)
    used = {i for n in graph.node for i in n.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    if kernels and not any(o.domain == "com.microsoft" for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return kernels


def _check_names(proto: onnx.ModelProto) -> None:
    """ONNX Runtime keeps the last of two same-named initializers: that would be silently wrong."""
    for kind, names in (("node", [n.name for n in proto.graph.node if n.name]),
                        ("initializer", [i.name for i in proto.graph.initializer])):
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise RuntimeError(f"export produced duplicate {kind} names: {sorted(dup)[:3]}")


EXACT_TOL = 1e-3  # max abs log-probability difference when weights are written exactly
INT8_MEAN_TOL = 0.05  # mean abs difference with activations quantized at run time


def _verify(model: ConformerCTC, path: Path, int8: bool) -> None:
    """Refuse to write a graph whose outputs do not match the PyTorch model's."""
    from ._runtime import session

    torch.manual_seed(0)
    feats = torch.randn(1, 201, model.cfg.n_mels)
    with torch.no_grad():
        want = model(feats, torch.tensor([201]))[0].numpy()
    got = session(path).run(None, {"feats": feats.numpy()})[0]
    diff = np.abs(got - want)
    ok = diff.mean() < INT8_MEAN_TOL if int8 else diff.max() < EXACT_TOL
    if got.shape != want.shape or not ok:
        raise RuntimeError(f"ONNX export does not match PyTorch (max abs diff {diff.max():.3g}); please report this")


def export_onnx(model: ConformerCTC, states: dict[str, LayerState] | None, out: Path,
                accuracy_level: int = 0) -> dict:
    """Write `out` (.onnx); returns which kernel each compressed layer runs on."""
    if not isinstance(model, ConformerCTC):
        raise UserError(f"ONNX export supports Conformer-CTC models, not {type(model).__name__}")
    states = states or {}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        _fp32_onnx(model, Path(tmp) / "fp32.onnx")
        proto = onnx.load(str(Path(tmp) / "fp32.onnx"))
    kernels = _rewrite(proto, _quantized_weights(model, states), accuracy_level)
    _check_names(proto)
    tmp_out = out.with_suffix(out.suffix + ".tmp")
    onnx.save(proto, str(tmp_out))
    try:
        _verify(model, tmp_out, int8=any("int8" in k for k in kernels.values()))
    except Exception:
        tmp_out.unlink(missing_ok=True)
        raise
    tmp_out.replace(out)
    layers = {}
    for name, st in states.items():
        if name in kernels:
            layers[name] = kernels[name]
        elif st.bits and st.quant_kind == "log":
            layers[name] = "fp32 (no power-of-two kernel)"
        elif st.bits:
            layers[name] = "fp32 (not a MatMul in the graph: Conv kernels stay fp32)"
        else:
            layers[name] = "fp32 dense" + (" (sparsity and sharing are not run faster)" if st.sparsity or st.clusters else "")
    return {"path": str(out), "bytes": out.stat().st_size, "opset": OPSET, "layers": layers}
