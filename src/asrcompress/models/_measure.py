"""PyTorch-side costs of a model (for peers that stay in PyTorch, e.g. torch.ao, INC)."""

from __future__ import annotations

import io
import statistics
import time

import torch


def state_dict_bytes(model: torch.nn.Module) -> int:
    """What `torch.save` of the state dict stores (packed weights and their scales when quantized)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


@torch.no_grad()
def torch_latency_ms(models: list[torch.nn.Module], frames: int, n_mels: int = 80, repeats: int = 10,
                     warmup: int = 3) -> list[float]:
    """Median ms of one (1, frames, n_mels) utterance per model, timed interleaved on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = torch.randn(1, frames, n_mels)
        n = torch.tensor([frames])
        times: list[list[float]] = [[] for _ in models]
        for rep in range(warmup + repeats):
            for i, m in enumerate(models):
                t0 = time.perf_counter()
                m(x, n)
                if rep >= warmup:
                    times[i].append((time.perf_counter() - t0) * 1e3)
        return [statistics.median(t) for t in times]
    finally:
        torch.set_num_threads(threads)
