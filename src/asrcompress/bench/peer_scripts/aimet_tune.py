"""Qualcomm AIMET (aimet-onnx) on the fp32 ONNX export: QuantSim W8A8 (min-max encodings from dev
utterances), and its automatic mixed precision (AMP) over W8A8 / W4A8 per layer group, allowed to
lose at most 5% relative dev WER. Each result is exported as a QDQ ONNX model the bench scores
and times with the others. Prints one JSON line (see common.py).
"""

from __future__ import annotations

import json
import tempfile
import time

import jiwer
import onnx
import torch

from common import load_split, parser

from asrcompress.models import FeatureSpec, greedy_decode


def main() -> None:
    args = parser().parse_args()
    from aimet_onnx.common.defs import QuantizationDataType
    from aimet_onnx.mixed_precision import choose_mixed_precision
    from aimet_onnx.quantsim import QuantizationSimModel

    fp32 = onnx.load(str(args.onnx))
    inp = fp32.graph.input[0]
    spec = FeatureSpec.of_graph(inp.name, [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim])
    waves, refs = load_split(args.corpus, "dev", 40 if args.quick else args.dev_utterances)
    inputs = [{spec.input_name: spec.prepare(w)} for w in waves]

    def wer_of(session) -> float:
        hyps = []
        for x in inputs:
            lp = torch.from_numpy(session.run(None, x)[0])
            hyps.append(greedy_decode(lp, torch.tensor([lp.shape[1]]))[0] or "")
        return float(jiwer.wer(refs, hyps))

    def calibrate(session) -> None:
        for x in inputs[:32]:
            session.run(None, x)

    cpu0, t0 = time.process_time(), time.perf_counter()
    points, notes = [], []
    sim = QuantizationSimModel(fp32, param_type="int8", activation_type="int8", quant_scheme="min_max",
                               dummy_input=inputs[0], providers=["CPUExecutionProvider"])
    sim.compute_encodings(calibrate)
    path = args.out / "aimet_w8a8.onnx"
    onnx.save(sim.to_onnx_qdq(prequantize_constants=True), str(path))  # int8 weights stored, not fp32 + Q/DQ
    points.append({"label": "aimet_w8a8", "file": str(path)})
    notes.append(f"QuantSim W8A8 min-max, encodings from {min(32, len(inputs))} dev utterances")
    try:
        amp = QuantizationSimModel(fp32, param_type="int8", activation_type="int8", quant_scheme="min_max",
                                   dummy_input=inputs[0], providers=["CPUExecutionProvider"])
        amp.compute_encodings(calibrate)
        base_acc = 1.0 - wer_of(amp.session)  # W8A8's; the drop is against fp32, below
        import onnxruntime as ort

        fp32_wer = wer_of(ort.InferenceSession(fp32.SerializeToString(), providers=["CPUExecutionProvider"]))
        w8a8 = ((8, QuantizationDataType.int), (8, QuantizationDataType.int))
        w4a8 = ((8, QuantizationDataType.int), (4, QuantizationDataType.int))
        with tempfile.TemporaryDirectory() as tmp:
            choose_mixed_precision(amp, [w8a8, w4a8], lambda s: 1.0 - wer_of(s), lambda s: 1.0 - wer_of(s),
                                   allowed_accuracy_drop=0.05 * fp32_wer, results_dir=tmp, clean_start=True,
                                   forward_pass_callback=calibrate)
        path = args.out / "aimet_amp.onnx"
        onnx.save(amp.to_onnx_qdq(prequantize_constants=True), str(path))
        points.append({"label": "aimet_amp", "file": str(path)})
        notes.append(f"AMP over W8A8 / W4A8, allowed drop 5% relative dev WER (W8A8 start: 1 - WER {base_acc:.3f})")
    except Exception as e:  # the QuantSim point stands; the AMP failure is reported as it happened
        notes.append(f"AMP failed: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
    print(json.dumps({"points": points, "cpu_seconds": time.process_time() - cpu0,
                      "wall_seconds": time.perf_counter() - t0, "note": "aimet-onnx 2.42.0: " + "; ".join(notes)}))


if __name__ == "__main__":
    main()
