"""Deployed-size accounting: the bytes a deployment really stores, per layer.

For each weight tensor the smallest of these formats is chosen (b = stored bits per value,
n = values, z = non-zeros, R = rows, C = columns, k = codebook entries):
    dense            ceil(n * b / 8)
    bitmap-sparse    ceil(z * b / 8) + ceil(n / 8)
    csr              ceil(z * b / 8) + z * index_bytes(C) + (R + 1) * 4
    codebook         k * b / 8 + ceil(n * ceil(log2 k) / 8)
    codebook+bitmap  k * b / 8 + ceil(z * ceil(log2 k) / 8) + ceil(n / 8)
plus scales when quantized: fp16 per output row, or per block of `group` inputs of each row, for
linear; one int8 exponent per row for log.
Everything not in a compressible layer is stored as is, except that a quantized model's
biases, norm parameters and BatchNorm statistics are fp16 numbers (`round_small_tensors`) and
count 2 bytes each. Not counted, in the compressed model or in the fp32 reference: integer
bookkeeping (BatchNorm's batch counter) and what the model family's adapter says the deployed
graph does not hold (`AcousticModel.not_deployed`: the Conformer's mel filterbank and window: the exported graph takes features, and the app
computes them from the sample rate and `n_mels`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..models import find_adapter
from ._apply import LayerState, layer_tensors
from ._layers import discover_layers
from ._quant import is_fp16_exact, small_tensors
from ._registry import ordered


def _index_bytes(cols: int) -> int:
    return 1 if cols <= 256 else 2 if cols <= 65536 else 4


def tensor_formats(t: torch.Tensor, bits: int, clusters: int | None) -> dict[str, int]:
    n = t.numel()
    rows = t.shape[0]
    cols = n // rows
    z = int(torch.count_nonzero(t))
    f = {
        "dense": math.ceil(n * bits / 8),
        "bitmap": math.ceil(z * bits / 8) + math.ceil(n / 8),
        "csr": math.ceil(z * bits / 8) + z * _index_bytes(cols) + (rows + 1) * 4,
    }
    if clusters:
        idx = max(1, math.ceil(math.log2(clusters + (1 if z < n else 0))))
        book = math.ceil(clusters * bits / 8)
        f["codebook"] = book + math.ceil(n * idx / 8)
        f["codebook+bitmap"] = book + math.ceil(z * max(1, math.ceil(math.log2(clusters))) / 8) + math.ceil(n / 8)
    return f


def layer_storage(st: LayerState | None) -> dict:
    """How a layer's tensors are stored: each registered method's contribution, in order
    (quantization sets bits and scales, clustering a codebook); fp32 dense without any."""
    out = {"bits": 32, "codebook": None, "scale_bytes": 0, "scales": "row"}
    if st is not None:
        for method in ordered():
            out.update(method.handler.storage(st) or {})
    return out


def _scale_bytes(t: torch.Tensor, storage: dict) -> int:
    """One scale per tensor, per output row, or (`groupG`) per block of G inputs of each row."""
    rows, cols = t.shape[0], t.numel() // t.shape[0]
    kind = storage["scales"]
    count = 1 if kind == "one" else rows * -(-cols // int(kind[5:])) if kind.startswith("group") else rows
    return count * storage["scale_bytes"]


def _other_bytes(model: nn.Module, covered: set[int], quantized: bool) -> int:
    """Bytes of the tensors outside the compressible layers."""
    adapter = find_adapter(model)
    skip = adapter.not_deployed(model) if adapter is not None else ()
    fp16 = {id(t) for t in small_tensors(model) if is_fp16_exact(t)} if quantized else set()
    total = 0
    for name, t in model.state_dict(keep_vars=True).items():
        if id(t) in covered or not t.is_floating_point() or (skip and name.startswith(skip)):
            continue
        total += t.numel() * (2 if id(t) in fp16 else t.element_size())
    return total


def size_report(model: nn.Module, states: dict[str, LayerState] | None = None,
                fp32_bytes: int | None = None) -> dict:
    """Per-layer bytes and totals. `fp32_bytes` is the uncompressed model's size; without it,
    it is derived from `model` (exact unless structured pruning changed shapes)."""
    states = states or {}
    layers_out = []
    covered: set[int] = set()
    total = 0
    layers = discover_layers(model)
    for layer in layers:
        st = states.get(layer.name)
        tensors = layer_tensors(model, layer, st)
        storage = layer_storage(st)
        bits, clusters = storage["bits"], storage["codebook"]
        layer_bytes, formats, params, nonzeros = 0, [], 0, 0
        for t in tensors:
            covered.add(id(t))
            f = tensor_formats(t.detach(), bits, clusters)
            best = min(f, key=f.get)
            layer_bytes += f[best] + _scale_bytes(t, storage)
            formats.append(best)
            params += t.numel()
            nonzeros += int(torch.count_nonzero(t))
        total += layer_bytes
        layers_out.append({
            "name": layer.name, "kind": layer.kind, "shape": list(layer.shape), "params": params,
            "nonzeros": nonzeros, "bits": bits, "rank": st.rank if st else None,
            "clusters": clusters, "format": "+".join(dict.fromkeys(formats)), "bytes": layer_bytes,
        })
    quantized = any(l["bits"] < 32 for l in layers_out)
    other = _other_bytes(model, covered, quantized)
    # The rest in fp32 too: quantizing any layer stores its fp16-exact small tensors in fp16, a
    # once-per-model saving that the surrogate counts once, not per option.
    other_fp32 = other if not quantized else _other_bytes(model, covered, quantized=False)
    total += other
    # Without a reference: every layer's original weights in fp32 (low-rank layers report
    # their original shape) plus the uncompressed rest.
    fp32 = fp32_bytes if fp32_bytes is not None else sum(l.params * 4 for l in layers) + other_fp32
    return {"total_bytes": total, "fp32_bytes": fp32, "ratio": fp32 / total, "other_bytes": other,
            "other_bytes_fp32": other_fp32, "layers": layers_out}

