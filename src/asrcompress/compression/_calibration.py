"""Calibration audio: what one-shot methods read from a few utterances, without training.

`Calibration(waves)` holds the first `utterances` utterances of the corpus's train split and
gives, for the model as it stands at a method's place in the order:
    hessians(model, layers)  each layer's input statistics X X^T / n (GPTQ rounding; for a 2-D
                             conv, of its input patches: the separable conv's least squares);
    log_probs(model)         the model's per-utterance log-probabilities (depth pruning's KL).
Utterances run one at a time, as deployed.

A layer's statistics depend only on the calibration audio and on the model up to that layer,
so they are kept (a bounded LRU, `HESSIAN_CACHE` entries) under the audio's and the whole
model's fingerprint (module types, tensor names, shapes and bytes): the sensitivity scan
compresses the same base once per option, and every GPTQ option of a layer reads the same
statistics, which one forward over the calibration audio would otherwise recompute each time.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from ._layers import LayerInfo

CALIBRATION_UTTERANCES = 64
HESSIAN_CACHE = 256  # layer statistics kept (each at most (C_in k k)^2 floats: 6.7 MB for the 3x3 front end)
_hessians: OrderedDict[tuple[str, str, str], torch.Tensor] = OrderedDict()


def model_fingerprint(model: nn.Module) -> str:
    """sha1 of the model's module types and every tensor's name, shape, dtype and bytes: two
    models with one fingerprint compute the same function (their code is their module types)."""
    h = hashlib.sha1()
    for name, module in model.named_modules():
        h.update(f"{name}:{type(module).__qualname__};".encode())
    for name, t in model.state_dict().items():
        h.update(f"{name}{tuple(t.shape)}{t.dtype};".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())  # any dtype (bf16)
    return h.hexdigest()


class Calibration:
    def __init__(self, waves: list[np.ndarray], utterances: int = CALIBRATION_UTTERANCES) -> None:
        self.waves = [torch.from_numpy(np.asarray(w, dtype=np.float32) / (32767.0 if w.dtype == np.int16 else 1.0))
                      for w in waves[:utterances]]
        h = hashlib.sha1()
        for w in self.waves:
            h.update(w.numpy().tobytes())
        self.audio = h.hexdigest()
        self.forwards = 0  # forwards run for statistics (those served from the cache run none)

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
        wider 1-D convs) get none, and are rounded to nearest. Served from the cache where this
        audio and this exact model computed them before."""
        fp = model_fingerprint(model)
        out = {}
        for layer in layers:
            hit = _hessians.get((self.audio, fp, layer.name))
            if hit is not None:
                _hessians.move_to_end((self.audio, fp, layer.name))
                out[layer.name] = hit
        missing = [layer for layer in layers if layer.name not in out]
        if missing:
            fresh = self._measure(model, missing)
            self.forwards += 1
            for name, hessian in fresh.items():
                _hessians[(self.audio, fp, name)] = hessian
                while len(_hessians) > HESSIAN_CACHE:
                    _hessians.popitem(last=False)
            out |= fresh
        return out

    def _measure(self, model: nn.Module, layers: list[LayerInfo]) -> dict[str, torch.Tensor]:
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
