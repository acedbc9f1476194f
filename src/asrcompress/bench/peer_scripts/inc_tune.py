"""Intel Neural Compressor (3.x, PyTorch API): accuracy-aware post-training quantization tuning.

INC's `autotune` tries its configs in order and keeps the first whose accuracy (1 - dev WER here)
is within `tolerable_loss` of the fp32 model's; we set that loss to 5% relative WER, the benchmark's
tolerance. INC 3.x has no ONNX backend any more (it moved to onnx/neural-compressor), so the result
is a PyTorch model, scored against PyTorch fp32 side by side. Prints one JSON line.
"""

from __future__ import annotations

import copy
import json
import time

import torch

from common import TEST_SECONDS, load_split, parser, save_emissions, state_dict_bytes, torch_latency_ms, torch_wer

from asrcompress.models import load_model


def main() -> None:
    args = parser().parse_args()
    from neural_compressor.torch.quantization import RTNConfig, TuningConfig, autotune

    torch.set_num_threads(1)
    base = load_model(args.model).eval()
    dev = load_split(args.corpus, "dev", 40 if args.quick else args.dev_utterances)
    base_dev = torch_wer(base, *dev)
    # INC compares accuracies: (acc_fp32 - acc_q) / acc_fp32 <= loss  <=>  WER_q <= 1.05 WER_fp32
    loss = 0.05 * base_dev / (1 - base_dev)
    configs = [RTNConfig(bits=4, group_size=32, use_sym=True), RTNConfig(bits=8, group_size=-1, use_sym=True)]
    for c in configs:  # torch's MultiheadAttention reads out_proj.weight directly: INC cannot replace it
        c.set_local(".*out_proj", RTNConfig(dtype="fp32"))
    cpu0, t0 = time.process_time(), time.perf_counter()
    tuned = autotune(copy.deepcopy(base), TuningConfig(config_set=configs, tolerable_loss=loss),
                     eval_fn=lambda m: 1 - torch_wer(m, *dev))
    cpu = time.process_time() - cpu0
    if tuned is None:
        print(json.dumps({"points": [], "cpu_seconds": cpu, "note": "no INC config met the tolerance"}))
        return
    t_base, t_q = torch_latency_ms([base, tuned], TEST_SECONDS)
    bits = sorted({getattr(m, "bits", 32) for m in tuned.modules() if "WeightOnlyLinear" in type(m).__name__})
    npz = save_emissions(tuned, args.test_manifest, args.out / "inc_autotune.npz")
    point = {"label": "inc_autotune", "file": str(npz), "runtime": "pytorch", "latency_ms": t_q,
             "base_latency_ms": t_base, "state_dict_size_ratio": state_dict_bytes(base) / state_dict_bytes(tuned)}
    print(json.dumps({"points": [point], "cpu_seconds": cpu, "wall_seconds": time.perf_counter() - t0,
                      "note": f"autotune over RTN int4 g32 / int8 weight-only, tolerable loss {loss:.4f} "
                              f"(= 5% relative WER on {len(dev[0])} dev utts); chosen: {bits}-bit weights"}))


if __name__ == "__main__":
    main()
