"""The operators a session really runs, with their shapes, FLOPs and bytes.

ONNX Runtime fuses and re-lays-out the exported graph when it loads it, so costs are read
from the optimized graph it saves, not from the file on disk. Shapes come from one run of
that graph with every intermediate value exposed as an output.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from ..export import session_options

MATMUL_FP32 = {"MatMul", "FusedMatMul", "Gemm"}
TRANSCENDENTAL = {"Softmax", "LogSoftmax", "Sigmoid", "Tanh", "Exp", "Erf", "LayerNormalization",
                  "SkipLayerNormalization", "SimplifiedLayerNormalization", "Gelu", "FastGelu", "BiasGelu",
                  "QuickGelu", "Swish", "HardSigmoid"}
SHAPE_BYTES = 1024  # ops moving less than this are pure dispatch overhead


@dataclass(frozen=True)
class Op:
    name: str
    op_type: str
    cls: str
    flops: float
    weight_bytes: float
    act_bytes: float


def _size(shape) -> int:
    return int(np.prod(shape)) if shape is not None else 0


def _bytes(v: np.ndarray | None) -> int:
    return 0 if v is None else v.nbytes


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def classify(node, shapes: dict[str, np.ndarray], inits: dict[str, np.ndarray]) -> Op:
    """Cost features of one node; `shapes` maps value names to arrays of that shape/dtype."""
    ins = [shapes.get(i) if i not in inits else inits[i] for i in node.input if i]
    outs = [shapes.get(o) for o in node.output if o]
    act = sum(_bytes(v) for i, v in zip(node.input, ins) if i not in inits) + sum(_bytes(v) for v in outs)
    weight = sum(_bytes(inits[i]) for i in node.input if i in inits)
    t = node.op_type
    flops = 0.0
    cls = "elementwise"
    y = outs[0] if outs else None
    if t in MATMUL_FP32 | {"DynamicQuantizeMatMul", "MatMulNBits"} and y is not None and ins[0] is not None:
        k = int(_attrs(node)["K"]) if t == "MatMulNBits" else ins[0].shape[-1]
        if t == "Gemm" and _attrs(node).get("transA", 0):
            k = ins[0].shape[0]
        flops = 2.0 * _size(y.shape) * k
        cls = "matmul_fp32"
        if t == "DynamicQuantizeMatMul":  # signed weights run u8 x s8, uint8 ones u8 x u8
            w = inits.get(node.input[1])
            cls = "matmul_int8_s8" if w is not None and w.dtype == np.int8 else "matmul_int8"
        elif t == "MatMulNBits":
            cls = {2: "matmul_nbits2", 8: "matmul_nbits8"}.get(int(_attrs(node)["bits"]), "matmul_int4")
    elif t in ("Conv", "FusedConv") and y is not None:
        w = ins[1]
        group = int(_attrs(node).get("group", 1))
        per_out = _size(w.shape[1:]) if w is not None else 1
        flops = 2.0 * _size(y.shape) * per_out
        pointwise = w is not None and group == 1 and _size(w.shape[2:]) == 1
        # ORT runs a grouped conv on its blocked NCHWc depthwise kernel where it can (a 2-D
        # depthwise conv, one filter per channel) and on its generic grouped path otherwise
        # (the conv module's 1-D depthwise conv, a depthwise conv with a channel multiplier,
        # whose time barely grows with the multiplier); they differ by ~4x per multiply-add.
        if group > 1 and node.domain == "com.microsoft.nchwc":
            cls = "conv_depthwise"
        elif group > 1:  # the generic path: 1-D and 2-D cost differently (im2col per group in 2-D)
            cls = "conv_grouped" if w is not None and w.ndim == 4 else "conv_grouped_1d"
        else:
            cls = "conv_pointwise" if pointwise else "conv"
    elif t in ("ReorderInput", "ReorderOutput"):  # NCHWc layout conversions: strided copies
        cls = "layout"
    elif t in TRANSCENDENTAL:
        cls = "transcendental"
        flops = float(sum(_size(v.shape) for v in outs if v is not None))
    if cls in ("elementwise", "transcendental") and act + weight < SHAPE_BYTES:
        cls = "shape"
    return Op(node.name or t, t, cls, flops, float(weight), float(act))


def graph_ops(model_path: Path, seconds: float = 8.0, threads: int = 1,
              feeds: dict[str, np.ndarray] | None = None) -> list[Op]:
    """Per-node costs of `model_path` as ONNX Runtime runs it, on `feeds` or else on the
    graph's input for one utterance of `seconds`."""
    with tempfile.TemporaryDirectory() as tmp:
        opt = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(model_path), session_options(threads, opt), providers=["CPUExecutionProvider"])
        proto = onnx.load(opt)
        inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
        graph_outputs = {o.name for o in proto.graph.output}
        for node in proto.graph.node:
            for o in node.output:
                if o and o not in graph_outputs:
                    proto.graph.output.append(helper.make_empty_tensor_value_info(o))
                    graph_outputs.add(o)
        probe = str(Path(tmp) / "probe.onnx")
        onnx.save(proto, probe)
        sess = ort.InferenceSession(probe, session_options(threads, level=ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
                                    providers=["CPUExecutionProvider"])
        if feeds is None:
            from ._measure import audio_feeds

            feeds = audio_feeds(sess, seconds, zeros=True)
        names = [o.name for o in sess.get_outputs()]
        values = sess.run(names, feeds)
        shapes = {n: np.asarray(v) for n, v in zip(names, values)}
        shapes.update(feeds)
        return [classify(node, shapes, inits) for node in proto.graph.node]


def summarize(ops: list[Op]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for op in ops:
        s = out.setdefault(op.cls, {"nodes": 0, "gflops": 0.0, "weight_mb": 0.0, "act_mb": 0.0})
        s["nodes"] += 1
        s["gflops"] += op.flops / 1e9
        s["weight_mb"] += op.weight_bytes / 1e6
        s["act_mb"] += op.act_bytes / 1e6
    return {k: {kk: (round(vv, 4) if isinstance(vv, float) else vv) for kk, vv in v.items()} for k, v in out.items()}


