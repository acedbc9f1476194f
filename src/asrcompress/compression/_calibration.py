"""Calibration audio: what one-shot methods read from a few utterances, without training.

`Calibration(waves)` holds the first `utterances` utterances of the corpus's train split and
gives, for the model as it stands at a method's place in the order:
    hessians(model, layers)  each layer's input statistics X X^T / n (GPTQ rounding; for a 2-D
                             conv, of its input patches: the separable conv's least squares);
    log_probs(model)         the model's per-utterance log-probabilities (depth pruning's KL).
Utterances run one at a time, as deployed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._layers import LayerInfo

CALIBRATION_UTTERANCES = 64


class Calibration:
    def __init__(self, waves: list[np.ndarray], utterances: int = CALIBRATION_UTTERANCES) -> None:
        self.waves = [torch.from_numpy(np.asarray(w, dtype=np.float32) / (32767.0 if w.dtype == np.int16 else 1.0))
                      for w in waves[:utterances]]

    @torch.no_grad()
    def log_probs(self, model: nn.Module) -> list[torch.Tensor]:
        """(T', V) log-probabilities per utterance."""
        from ..models import log_probs

        training = model.training
        model.eval()
        try:
            return [log_probs(model, w[None], torch.tensor([w.numel()]))[0][0] for w in self.waves]
        finally:
            model.train(training)

    @torch.no_grad()
    def hessians(self, model: nn.Module, layers: list[LayerInfo]) -> dict[str, torch.Tensor]:
        """Each listed layer's X X^T / n over its inputs: rows of features for a Linear, the packed
        attention projection or a pointwise Conv1d; the (C_in k k) input patches of a full 2-D
        conv, in the order of its weight's (C_out, C_in k k) view. Other layers (grouped or
        wider 1-D convs) get none, and are rounded to nearest."""
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        hooks = []

        def add(name: str, x: torch.Tensor) -> None:
            x = x.detach().reshape(-1, x.shape[-1])  # (rows, in)
            sums[name] = sums.get(name, 0) + (x.T @ x).double()  # one utterance's sum in fp32 is exact enough
            counts[name] = counts.get(name, 0) + x.shape[0]

        for layer in layers:
            module = model.get_submodule(layer.module_name)
            if layer.kind == "MultiheadAttention":  # in_proj sees the query (T, N, d)
                hooks.append(module.register_forward_pre_hook(
                    lambda m, args, kwargs, n=layer.name: add(n, (args[0] if args else kwargs["query"])),
                    with_kwargs=True))
            elif layer.kind == "Linear" and isinstance(module, nn.Linear):
                hooks.append(module.register_forward_pre_hook(lambda m, a, n=layer.name: add(n, a[0])))
            elif layer.kind == "Conv1d" and isinstance(module, nn.Conv1d) and module.kernel_size == (1,) \
                    and module.groups == 1:  # pointwise: (N, C, T) -> rows of C
                hooks.append(module.register_forward_pre_hook(lambda m, a, n=layer.name: add(n, a[0].transpose(1, 2))))
            elif layer.kind == "Conv2d" and isinstance(module, nn.Conv2d) and module.groups == 1:
                # (N, C, H, W) -> (N, C k k, L) patches -> rows of C k k
                hooks.append(module.register_forward_pre_hook(lambda m, a, n=layer.name: add(n, nn.functional.unfold(
                    a[0], m.kernel_size, m.dilation, m.padding, m.stride).transpose(1, 2))))
        try:
            self.log_probs(model)
        finally:
            for h in hooks:
                h.remove()
        return {n: (s / counts[n]).float() for n, s in sums.items()}
