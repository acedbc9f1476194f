"""PyTorch-side costs of a model (for peers that stay in PyTorch, e.g. torch.ao, INC)."""

from __future__ import annotations

import io
import statistics
import time

import torch

from ._adapter import adapter_for, features_of


def state_dict_bytes(model: torch.nn.Module) -> int:
    """What `torch.save` of the state dict stores (packed weights and their scales when quantized)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


@torch.no_grad()
def torch_latency_ms(models: list[torch.nn.Module], seconds: float, repeats: int = 10, warmup: int = 3) -> list[float]:
    """Median ms of one utterance of `seconds` per model, timed interleaved on one thread. Each
    model runs its family's deployed graph (`AcousticModel.deploy`) on that graph's input, so
    features are excluded, as in the ONNX timings."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        graphs = [adapter_for(m).deploy(m.eval()) for m in models]
        spec = features_of(models[0])
        x = spec.example(spec.steps(int(seconds * spec.sample_rate)))
        times: list[list[float]] = [[] for _ in models]
        for rep in range(warmup + repeats):
            for i, g in enumerate(graphs):
                t0 = time.perf_counter()
                g(x)
                if rep >= warmup:
                    times[i].append((time.perf_counter() - t0) * 1e3)
        return [statistics.median(t) for t in times]
    finally:
        torch.set_num_threads(threads)
