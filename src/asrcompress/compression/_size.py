"""Deployed-size accounting: the bytes a deployment really stores, per layer.

For each weight tensor the smallest of these formats is chosen (b = stored bits per value,
n = values, z = non-zeros, R = rows, C = columns, k = codebook entries):
    dense            ceil(n * b / 8)
    bitmap-sparse    ceil(z * b / 8) + ceil(n / 8)
    csr              ceil(z * b / 8) + z * index_bytes(C) + (R + 1) * 4
    codebook         k * b / 8 + ceil(n * ceil(log2 k) / 8)
    codebook+bitmap  k * b / 8 + ceil(z * ceil(log2 k) / 8) + ceil(n / 8)
plus per-output-channel scales when quantized (fp32 for linear, one int8 exponent for log).
Everything not in a compressible layer (biases, norms, feature buffers) is stored as is.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._apply import LayerState, layer_tensors
from ._layers import discover_layers


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


def _scale_bytes(rows: int, st: LayerState | None) -> int:
    if st is None or st.bits is None:
        return 0
    channels = 1 if st.clusters else rows  # a quantized codebook has one scale
    return channels * (4 if st.quant_kind == "linear" else 1)


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
        bits = st.bits if st and st.bits else 32
        clusters = st.clusters if st else None
        layer_bytes, formats, params, nonzeros = 0, [], 0, 0
        for t in tensors:
            covered.add(id(t))
            f = tensor_formats(t.detach(), bits, clusters)
            best = min(f, key=f.get)
            layer_bytes += f[best] + _scale_bytes(t.shape[0], st)
            formats.append(best)
            params += t.numel()
            nonzeros += int(torch.count_nonzero(t))
        total += layer_bytes
        layers_out.append({
            "name": layer.name, "kind": layer.kind, "shape": list(layer.shape), "params": params,
            "nonzeros": nonzeros, "bits": bits, "rank": st.rank if st else None,
            "clusters": clusters, "format": "+".join(dict.fromkeys(formats)), "bytes": layer_bytes,
        })
    # Layers found above are the compressible weights; the rest is stored as is.
    other = sum(t.numel() * t.element_size() for t in model.state_dict(keep_vars=True).values()
                if id(t) not in covered)
    total += other
    # Without a reference: every layer's original weights in fp32 (low-rank layers report
    # their original shape) plus the uncompressed rest.
    fp32 = fp32_bytes if fp32_bytes is not None else sum(l.params * 4 for l in layers) + other
    return {"total_bytes": total, "fp32_bytes": fp32, "ratio": fp32 / total, "other_bytes": other,
            "layers": layers_out}

