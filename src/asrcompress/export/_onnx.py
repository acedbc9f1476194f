"""Export a (compressed) acoustic model of any registered family to ONNX with a dynamic time axis.

The graph is the family adapter's single-utterance module (`AcousticModel.deploy`), its input
named and shaped by the adapter's FeatureSpec.

The fp32 graph comes from torch's dynamo exporter (the TorchScript exporter bakes the time
length into the attention reshapes). Then every MatMul whose constant weight equals a
linearly quantized layer's weights is swapped for the int8 or 4-bit kernel (`_kernels`).
Weights are matched by value, so the swap does not depend on the exporter's names.
Conv weights of linearly quantized layers are stored as their codes behind a Cast and a Mul,
which ONNX Runtime folds at session start, so the fp32 convolution keeps its pre-packed
weights and NCHWc layout. Unstructured sparsity, clustering and log quantization stay
dense fp32 here: no kernel runs them faster, and `inspect` counts their storage savings instead.
In a quantized export every 1-D float tensor whose values are fp16 numbers (the scales, and the
biases and norms `round_small_tensors` left so) is stored in fp16 behind a Cast, which ONNX
Runtime folds once when the session starts.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from ..compression import LayerState, discover_layers, layer_tensors, lowering
from .._outputs import output_file
from ..errors import UserError
from ..models import adapter_for
from ._deploy import DeployModel
from ._int8_paths import Int8Paths, default_int8_paths
from ._kernels import as_grid, dequantized_weight, int8_matmul, nbits_matmul
from ._static import activation_ranges, static_int8_matmul

OPSET = 18
MIN_SAMPLES, MAX_SAMPLES = 2_400, 16_000_000  # 0.15 s to 1000 s of 16 kHz audio


def _fp32_onnx(model: nn.Module, path: Path) -> None:
    adapter = adapter_for(model)
    spec = adapter.features(model)
    deploy = DeployModel(model).eval()
    x = spec.example(spec.steps(48_000))  # 3 s
    t = torch.export.Dim("T", min=spec.steps(MIN_SAMPLES), max=spec.steps(MAX_SAMPLES))
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(deploy, (x,), dynamo=True, dynamic_shapes=({spec.dynamic_axis(): t},),
                                    input_names=[spec.input_name], output_names=[adapter.output_name()],
                                    opset_version=OPSET, optimize=True, verbose=False)
        program.save(str(path))


def _key(a: np.ndarray) -> tuple:
    a = np.ascontiguousarray(a, dtype=np.float32)
    return a.shape, a.tobytes()


def _linear_quantized(model: nn.Module, states: dict[str, LayerState]):
    """(layer, state, stored tensors) of every linearly quantized layer."""
    for layer in discover_layers(model):
        st = states.get(layer.name)
        if st is not None and lowering(st).get("grid_bits"):
            yield layer, st, layer_tensors(model, layer, st)


def _quantized_weights(model: nn.Module, states: dict[str, LayerState]) -> dict[tuple, tuple[str, str, int, int]]:
    """(K, N) weight value key -> (node name, layer name, bits, group) for linearly quantized
    layers. A low-rank layer has two tensors, so two nodes."""
    out = {}
    for layer, st, tensors in _linear_quantized(model, states):
        low = lowering(st)
        for part, t in zip(("first", "second") if len(tensors) == 2 else ("",), tensors):
            w2d = t.detach().reshape(t.shape[0], -1).numpy()
            out[_key(w2d.T)] = (f"{layer.name}.{part}" if part else layer.name, layer.name, low["grid_bits"],
                                low.get("group", 0))
    return out


def _quantized_convs(model: nn.Module, states: dict[str, LayerState]) -> dict[tuple, tuple[str, int, int]]:
    """Conv weight value key (its own shape) -> (layer name, bits, group) for linearly quantized
    Conv layers. Pointwise Conv1d layers run as MatMuls (DeployModel) and are matched there instead."""
    out = {}
    for layer, st, tensors in _linear_quantized(model, states):
        if layer.kind in ("Conv1d", "Conv2d"):
            for i, t in enumerate(tensors):  # a factored conv (Tucker-2) has three, named apart
                name = f"{layer.name}.factor{i}" if len(tensors) > 1 else layer.name
                out[_key(t.detach().numpy())] = (name, lowering(st)["grid_bits"], lowering(st).get("group", 0))
    return out


def _store_conv_weights(proto: onnx.ModelProto, wanted: dict[tuple, tuple[str, int, int]]) -> dict[str, str]:
    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    kernels, new_nodes, new_inits = {}, [], []
    for node in graph.node:
        w_name = node.input[1] if node.op_type == "Conv" and len(node.input) > 1 else None
        w = numpy_helper.to_array(inits[w_name]) if w_name in inits else None
        hit = wanted.get(_key(w)) if w is not None else None
        grid = as_grid(w.reshape(w.shape[0], -1), hit[1], hit[2]) if hit else None
        if grid is not None:
            nodes, tensors, out = dequantized_weight(hit[0], w.shape, grid)
            new_nodes += nodes
            new_inits += tensors
            node.input[1] = out
            stored = 2 if hit[1] == 2 else 4 if hit[1] <= 4 else 8
            kernels[hit[0].split(".factor")[0]] = (f"fp32 Conv on int{stored}-stored weights ("
                                                   + (f"block {hit[2]} scales)" if hit[2] else "row scales)"))
        new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(new_inits)
    return kernels


def _constant(graph: onnx.GraphProto, name: str, inits: dict, producers: dict) -> np.ndarray | None:
    if name in inits:
        return numpy_helper.to_array(inits[name])
    node = producers.get(name)
    if node is not None and node.op_type == "Transpose" and node.input[0] in inits:
        return numpy_helper.to_array(inits[node.input[0]]).T
    return None


def _matmul_weight(node: onnx.NodeProto, graph: onnx.GraphProto, inits: dict, producers: dict) -> np.ndarray | None:
    """The constant (K, N) right-hand side of a MatMul, or of a Gemm that is a plain A @ B (+ C)."""
    if node.op_type == "MatMul":
        return _constant(graph, node.input[1], inits, producers)
    if node.op_type == "Gemm":
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transA", 0) == 0 and attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0:
            b = _constant(graph, node.input[1], inits, producers)
            return b.T if b is not None and attrs.get("transB", 0) else b
    return None


def _matched(graph: onnx.GraphProto, wanted: dict[tuple, tuple[str, str, int]]):
    """Every node, with its constant (K, N) weight and the quantized layer it matches (or None)."""
    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    for node in list(graph.node):
        b = _matmul_weight(node, graph, inits, producers)
        yield node, b, wanted.get(_key(b)) if b is not None and b.ndim == 2 else None


def _int8_inputs(proto: onnx.ModelProto, wanted: dict[tuple, tuple[str, str, int]]) -> set[str]:
    """Names of the activations that enter int8 MatMuls (what static calibration measures)."""
    return {node.input[0] for node, _, hit in _matched(proto.graph, wanted) if hit and hit[2] > 4 and not hit[3]}


def _rewrite(proto: onnx.ModelProto, wanted: dict[tuple, tuple[str, str, int]], accuracy_level: int,
             act_ranges: dict[str, tuple[float, float]] | None = None,
             int8_paths: Int8Paths = Int8Paths()) -> dict[str, str]:
    graph = proto.graph
    kernels: dict[str, str] = {}
    new_nodes, new_inits, absorbed = [], [], set()
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    biases = {i.name: tuple(i.dims) for i in graph.initializer if len(i.dims) == 1}
    outputs = {o.name for o in graph.output}
    for node, b, hit in _matched(graph, wanted):
        if node.op_type == "Add" and node.output[0] in absorbed:
            continue
        grid = as_grid(b.T, hit[2], hit[3]) if hit else None
        if grid is None:
            new_nodes.append(node)
            continue
        name, layer_name, bits, group = hit
        gemm_bias = node.op_type == "Gemm" and len(node.input) > 2
        y = node.output[0] + ("_nobias" if gemm_bias else "")
        static = act_ranges is not None and node.input[0] in act_ranges and not group
        if bits <= 4 or group:
            nodes, tensors = nbits_matmul(name, node.input[0], y, grid, accuracy_level)
            stored = 2 if bits == 2 else 4 if bits <= 4 else 8
            label = f"int{stored} MatMulNBits (block {group or 32}{'' if group else ', row scales'})"
        elif static:
            nodes, tensors = static_int8_matmul(name, node.input[0], y, grid, act_ranges[node.input[0]])
            label = "int8 MatMulIntegerToFloat (static activation range)"
        else:
            add = None if gemm_bias or y in outputs else _bias_add(consumers.get(y, []), y, biases, b.shape[1])
            if add is not None:  # MatMul -> Add(bias) becomes one op with its bias input
                absorbed.add(add[0].output[0])
                y = add[0].output[0]
            signed = int8_paths.signed(grid.codes.shape[1], grid.codes.shape[0], bits)
            nodes, tensors = int8_matmul(name, node.input[0], y, grid, add and add[1], signed)
            label = f"int8 DynamicQuantizeMatMul ({'u8 x s8' if signed else 'u8 x u8'})"
        if gemm_bias:
            nodes.append(helper.make_node("Add", [y, node.input[2]], [node.output[0]], name=f"{name}.bias"))
        new_nodes += nodes
        new_inits += tensors
        kernels[layer_name] = label
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(new_inits)
    if kernels and not any(o.domain == "com.microsoft" for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return kernels


def _bias_add(users: list[onnx.NodeProto], y: str, biases: dict[str, tuple], n: int
              ) -> tuple[onnx.NodeProto, str] | None:
    """The Add that is `y`'s only consumer, with a constant (n,) bias as its other input."""
    if len(users) != 1 or users[0].op_type != "Add":
        return None
    other = [i for i in users[0].input if i != y]
    if len(other) != 1 or biases.get(other[0]) != (n,):
        return None
    return users[0], other[0]


def _drop_unused_initializers(proto: onnx.ModelProto) -> None:
    """The fp32 weights that both rewrites replaced."""
    graph = proto.graph
    used = {i for n in graph.node for i in n.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def _store_fp16(proto: onnx.ModelProto) -> None:
    """Store exactly-fp16 1-D float initializers as fp16 + Cast."""
    graph = proto.graph
    inputs = {i.name for i in graph.input}
    keep, casts = [], []
    for init in graph.initializer:
        a = numpy_helper.to_array(init) if init.data_type == onnx.TensorProto.FLOAT and len(init.dims) == 1 else None
        h = a.astype(np.float16) if a is not None and a.size >= 2 and init.name not in inputs else None
        if h is None or not np.array_equal(h.astype(np.float32), a):
            keep.append(init)
            continue
        keep.append(numpy_helper.from_array(h, f"{init.name}.fp16"))
        casts.append(helper.make_node("Cast", [f"{init.name}.fp16"], [init.name], name=f"{init.name}.cast",
                                      to=onnx.TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)


def _strip_trace(proto: onnx.ModelProto) -> None:
    """Drop what torch's exporter writes on every node for debugging: the Python stack trace,
    FX node, class hierarchy and name scopes. It is about 0.8 MB on the default Conformer (a
    third of a 4-bit model's file), nothing runs on it, and it would ship the paths of this
    machine's source files inside the user's deployed model."""
    graphs = [proto.graph]
    while graphs:
        g = graphs.pop()
        g.doc_string = ""
        for node in g.node:
            del node.metadata_props[:]
            node.doc_string = ""
            for a in node.attribute:  # If / Loop / Scan bodies
                graphs.extend([a.g] if a.type == onnx.AttributeProto.GRAPH else a.graphs)


def _check_names(proto: onnx.ModelProto) -> None:
    """ONNX Runtime keeps the last of two same-named initializers: that would be silently wrong."""
    for kind, names in (("node", [n.name for n in proto.graph.node if n.name]),
                        ("initializer", [i.name for i in proto.graph.initializer])):
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise RuntimeError(f"export produced duplicate {kind} names: {sorted(dup)[:3]}")


EXACT_TOL = 1e-3  # max abs log-probability difference when weights are written exactly
# With activations quantized per tensor at run time the outputs drift by design (a distilled
# model with wider activations reached a mean of 0.053; a 6-block 7-bit model distilled for
# 2,000 steps 0.099, and 0.124 once ORT ran its front end in NCHWc layout, with the best token
# the same in 100% of frames); a wrong graph changes the best token.
INT8_MEAN_TOL = 0.2
INT8_ARGMAX_AGREEMENT = 0.9
SURE_MARGIN = 0.5  # nats between PyTorch's best and second-best token


def _verify(model: nn.Module, path: Path, int8: bool) -> None:
    """Refuse to write a graph whose outputs do not match the PyTorch model's on 2 s of audio:
    the app's path (FeatureSpec.prepare, then the graph) against the model's own log_probs."""
    from ._runtime import session

    adapter = adapter_for(model)
    wave = torch.Generator().manual_seed(0)
    wave = 0.1 * torch.randn(1, 32_000, generator=wave)
    with torch.no_grad():
        want = adapter.log_probs(model.eval(), wave, torch.tensor([32_000]))[0][0].numpy()
    spec = adapter.features(model)
    got = session(path).run(None, {spec.input_name: spec.prepare(wave[0].numpy())})[0][0]
    if got.shape != want.shape:
        raise RuntimeError(f"ONNX export gives shape {got.shape}, PyTorch {want.shape}; please report this")
    diff = np.abs(got - want)
    # Best-token agreement on the frames PyTorch is sure of (top-1 ahead of top-2 by >= 0.5 nats):
    # on 2 s of noise many frames are near-ties that int8 rounding flips without anything wrong
    # (a search trial failed at 89.8% over all frames); a miswired graph disagrees on sure ones too.
    top2 = np.sort(want, axis=-1)[..., -2:]
    sure = (top2[..., 1] - top2[..., 0]) >= SURE_MARGIN
    same = got.argmax(-1) == want.argmax(-1)
    agree = float(same[sure].mean()) if sure.any() else float(same.mean())
    ok = (diff.mean() < INT8_MEAN_TOL and agree >= INT8_ARGMAX_AGREEMENT) if int8 else diff.max() < EXACT_TOL
    if not ok:
        raise RuntimeError(f"ONNX export does not match PyTorch (mean abs diff {diff.mean():.3g}, max "
                           f"{diff.max():.3g}, same best token in {agree:.0%} of the frames PyTorch is sure of); please report this")


def export_onnx(model: nn.Module, states: dict[str, LayerState] | None, out: Path,
                accuracy_level: int = 0, calibration: Sequence[np.ndarray] | None = None,
                int8_paths: Int8Paths | None = None) -> dict:
    """Write `out` (.onnx); returns which kernel each compressed layer runs on.

    `int8_paths`: the measured u8 x u8 / u8 x s8 table that picks each dynamic int8 MatMul's
    kernel (a profile's `int8_paths`); by default the shipped host profile's (`_int8_paths`).

    `calibration`: graph inputs (`calibration_features`, e.g. (1, T, n_mels) log-mel); with them the int8 MatMuls quantize their
    inputs with ranges measured on these features (static), else at run time (dynamic).
    """
    adapter_for(model)  # one error line for a model of no registered family
    states = states or {}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        _fp32_onnx(model, Path(tmp) / "fp32.onnx")
        proto = onnx.load(str(Path(tmp) / "fp32.onnx"))
        wanted = _quantized_weights(model, states)
        ranges = None
        if calibration is not None:
            if not len(calibration):
                raise UserError("static activation quantization needs at least one calibration utterance")
            ranges = activation_ranges(Path(tmp) / "fp32.onnx", calibration, _int8_inputs(proto, wanted),
                                       adapter_for(model).features(model).input_name)
    kernels = _store_conv_weights(proto, _quantized_convs(model, states))
    paths = int8_paths if int8_paths is not None else default_int8_paths()
    kernels.update(_rewrite(proto, wanted, accuracy_level, ranges, paths))
    _drop_unused_initializers(proto)
    if kernels:
        _store_fp16(proto)
    _strip_trace(proto)
    _check_names(proto)
    with output_file(out, {}) as tmp_out:  # replaced in one rename, and only once verified
        onnx.save(proto, str(tmp_out))
        # activations quantized (dynamic or static int8 kernels): outputs drift by design
        _verify(model, tmp_out, int8=any("Dynamic" in k or "IntegerToFloat" in k for k in kernels.values()))
    layers = {}
    for name, st in states.items():
        if st.kind == "model":  # model-scope methods (depth): nothing for a kernel to run
            continue
        low = lowering(st)
        if name in kernels:
            layers[name] = kernels[name]
        elif low.get("grid_bits"):
            layers[name] = "fp32 (not found as a MatMul or Conv weight in the graph)"
        elif low.get("no_kernel"):  # e.g. quantized on a grid no kernel runs
            layers[name] = f"fp32 ({low['no_kernel']})"
        else:
            layers[name] = "fp32 dense" + (f" ({low['note']})" if low.get("note") else "")
    return {"path": str(out), "bytes": out.stat().st_size, "opset": OPSET, "layers": layers}
