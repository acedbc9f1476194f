"""Compressed model folders: the base folder's files plus compression.json.

Weights are baked (plain tensors), so loading rebuilds the compressed shapes (low-rank
factors) on a fresh base model and loads the safetensors exactly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from torch import nn

from ._apply import LayerState, rebuild_structure, states_from_dict, states_to_dict
from ._policy import Policy

COMPRESSION = "compression.json"
COMPRESSION_VERSION = 1
# Decoder assets travel with the model so `evaluate` decodes a compressed model the same way.
CARRIED = ("lexicon.txt", "lm.arpa")


def write_compression(out: Path, base_dir: Path, policy: Policy, states: dict[str, LayerState],
                      extra: dict) -> None:
    for name in CARRIED:
        if (Path(base_dir) / name).exists():
            shutil.copy(Path(base_dir) / name, Path(out) / name)
    doc = {"version": COMPRESSION_VERSION, "base_model": str(base_dir), "policy": policy.to_dict(),
           "layers": states_to_dict(states), **extra}
    (Path(out) / COMPRESSION).write_text(json.dumps(doc, indent=2) + "\n")


def read_states(model_dir: Path) -> dict[str, LayerState] | None:
    path = Path(model_dir) / COMPRESSION
    if not path.exists():
        return None
    return states_from_dict(json.loads(path.read_text())["layers"])


def read_fp32_bytes(model_dir: Path) -> int | None:
    path = Path(model_dir) / COMPRESSION
    return json.loads(path.read_text()).get("fp32_bytes") if path.exists() else None


def apply_structure(model: nn.Module, model_dir: Path) -> nn.Module:
    states = read_states(model_dir)
    return rebuild_structure(model, states) if states else model
