"""Compressed model folders: the base folder's files plus compression.json.

Weights are baked (plain tensors), so loading rebuilds the compressed shapes (low-rank
factors) on a fresh base model and loads the safetensors exactly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .._json import read_json

from torch import nn

from ..models import DECODER_FILES
from ._apply import LayerState, rebuild_structure, states_from_dict, states_to_dict
from ._policy import Policy

COMPRESSION = "compression.json"
COMPRESSION_VERSION = 1
COMPRESSION_KEYS = frozenset({"version", "base_model", "policy", "layers", "trial", "distill", "fp32_bytes",
                              "compress_seconds", "skipped", "command", "total_bytes", "ratio", "recipe"})
# Decoder assets travel with the model so `evaluate` decodes a compressed model the same way.
CARRIED = DECODER_FILES


def write_compression(out: Path, base_dir: Path, policy: Policy, states: dict[str, LayerState],
                      extra: dict) -> None:
    for name in CARRIED:
        if (Path(base_dir) / name).exists():
            shutil.copy(Path(base_dir) / name, Path(out) / name)
    doc = {"version": COMPRESSION_VERSION, "base_model": str(base_dir), "policy": policy.to_dict(),
           "layers": states_to_dict(states), **extra}
    (Path(out) / COMPRESSION).write_text(json.dumps(doc, indent=2) + "\n")


def read_compression(model_dir: Path) -> dict | None:
    path = Path(model_dir) / COMPRESSION
    return read_json(path, COMPRESSION_KEYS) if path.exists() else None


def read_states(model_dir: Path) -> dict[str, LayerState] | None:
    doc = read_compression(model_dir)
    return None if doc is None else states_from_dict(doc.get("layers") or {})


def read_fp32_bytes(model_dir: Path) -> int | None:
    doc = read_compression(model_dir)
    return None if doc is None else doc.get("fp32_bytes")


def apply_structure(model: nn.Module, model_dir: Path) -> nn.Module:
    states = read_states(model_dir)
    return rebuild_structure(model, states) if states else model
