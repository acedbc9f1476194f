"""OpenVINO NNCF on the fp32 ONNX export: accuracy-controlled 8-bit quantization, and 4-bit
weight compression. Prints one JSON line (see common.py).

    nncf.quantize_with_accuracy_control: INT8 QDQ calibrated on dev utterances, then NNCF keeps
        the layers that hurt most in fp32 until dev WER is within 5% relative of the fp32 model's
        (metric 1 - WER, absolute drop 0.05 x base WER);
    nncf.compress_weights: INT4 symmetric, group 32 and 128 (MatMulNBits on ONNX).
"""

from __future__ import annotations

import json
import time

import jiwer
import numpy as np
import onnx
import onnxruntime as ort
import torch

from common import load_split, parser

from asrcompress.models import FeatureSpec, greedy_decode


def main() -> None:
    args = parser().parse_args()
    import nncf

    fp32 = onnx.load(str(args.onnx))
    inp = fp32.graph.input[0]
    dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
    spec = FeatureSpec.of_graph(inp.name, dims)
    waves, refs = load_split(args.corpus, "dev", 40 if args.quick else args.dev_utterances)
    items = [(spec.prepare(w), r) for w, r in zip(waves, refs)]

    def validate(model: onnx.ModelProto, data) -> tuple[float, list[float]]:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        hyps, per_item = [], []
        for x, ref in data:
            lp = torch.from_numpy(sess.run(None, {spec.input_name: x})[0])
            hyp = greedy_decode(lp, torch.tensor([lp.shape[1]]))[0]
            hyps.append(hyp)
            per_item.append(1.0 - min(1.0, jiwer.wer(ref, hyp or "")))
        return 1.0 - float(jiwer.wer([r for _, r in data], [h or "" for h in hyps])), per_item

    cpu0, t0 = time.process_time(), time.perf_counter()
    base_metric, _ = validate(fp32, items)
    max_drop = 0.05 * (1.0 - base_metric)  # WER_q <= 1.05 WER_fp32
    dataset = nncf.Dataset(items, lambda item: {spec.input_name: item[0]})
    points, notes = [], []
    q = nncf.quantize_with_accuracy_control(fp32, calibration_dataset=dataset, validation_dataset=nncf.Dataset(items),
                                            validation_fn=validate, max_drop=max_drop,
                                            drop_type=nncf.DropType.ABSOLUTE, subset_size=len(items))
    path = args.out / "nncf_accuracy_control.onnx"
    onnx.save(q, str(path))
    points.append({"label": "nncf_accuracy_control", "file": str(path)})
    notes.append(f"quantize_with_accuracy_control INT8, max drop {max_drop:.4f} of 1 - WER (5% relative WER) on "
                 f"{len(items)} dev utterances")
    # a layer whose input width the group does not divide (the front end's 1,296) gets the nearest
    # group size that does (NNCF's ADJUST), as its error message advises
    adjust = nncf.AdvancedCompressionParameters(group_size_fallback_mode=nncf.GroupSizeFallbackMode.ADJUST)
    variants = {"nncf_int4_g32": {"group_size": 32}, "nncf_int4_g128": {"group_size": 128},
                # its data-aware setting: AWQ and scale estimation on the dev utterances
                "nncf_int4_g32_awq_se": {"group_size": 32, "dataset": dataset, "awq": True, "scale_estimation": True}}
    for label, kw in variants.items():
        try:
            w = nncf.compress_weights(onnx.load(str(args.onnx)), mode=nncf.CompressWeightsMode.INT4_SYM, ratio=1.0,
                                      advanced_parameters=adjust, ignored_scope=nncf.IgnoredScope(types=["Conv"]),
                                      **kw)
            path = args.out / f"{label}.onnx"
            onnx.save(w, str(path))
            points.append({"label": label, "file": str(path)})
        except Exception as e:  # reported, not fatal: the other points stand
            notes.append(f"compress_weights {label} failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    notes.append("compress_weights INT4_SYM, every MatMul: group 32, group 128, and group 32 with AWQ + scale "
                 "estimation on the dev utterances (ADJUST where a width is not a multiple of the group)")
    print(json.dumps({"points": points, "cpu_seconds": time.process_time() - cpu0,
                      "wall_seconds": time.perf_counter() - t0,
                      "note": f"NNCF {nncf.__version__}: " + "; ".join(notes)}))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
