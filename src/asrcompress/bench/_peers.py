"""Peer tools the benchmark compares against, on the same fp32 ONNX export / PyTorch model.

In-process (the project's own environment): ONNX Runtime's `quantize_dynamic` (int8) and its
4-bit weight-only `MatMulNBitsQuantizer`, and `torch.ao` dynamic quantization. Intel Neural
Compressor and Microsoft Olive run in `.venv-peers` (scripts/setup_peers.sh) through
the scripts in `bench/peer_scripts/` (package data; `scripts/peers` links there), so their pins
never reach asrcompress's runtime dependencies.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
from pathlib import Path

import onnx
import torch
from onnx import numpy_helper

PEER_SCRIPTS = Path(__file__).resolve().parent / "peer_scripts"  # package data, found beside this module
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding `asrcompress`, for the peers' PYTHONPATH
# The peers' environment (scripts/setup_peers.sh makes it in the working folder).
PEERS_PYTHON = Path(os.environ.get("ASRCOMPRESS_PEERS_PYTHON", ".venv-peers/bin/python")).absolute()


def onnx_stored_bytes(path: Path) -> int:
    """Bytes of the tensors an ONNX file stores: initializers and Constant nodes' values."""
    m = onnx.load(str(path))
    total = sum(numpy_helper.to_array(t).nbytes for t in m.graph.initializer)
    for node in m.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.type == onnx.AttributeProto.TENSOR:
                    total += numpy_helper.to_array(a.t).nbytes
    return total


def ort_int8(fp32: Path, out: Path) -> Path:
    """ONNX Runtime's dynamic int8 quantization with its default settings, as a user runs it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8)
    return out


def ort_int4(fp32: Path, out: Path) -> Path:
    """ONNX Runtime's 4-bit weight-only quantizer (MatMulNBits, block 32, symmetric)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    q = MatMulNBitsQuantizer(onnx.load(str(fp32)), block_size=32, is_symmetric=True)
    q.process()
    q.model.save_model_to_file(str(out), use_external_data_format=False)
    return out


def torch_ao_dynamic(model: torch.nn.Module) -> torch.nn.Module:
    """torch.ao dynamic int8 quantization of every nn.Linear (attention's out_proj is excluded by torch)."""
    import copy
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(model).eval(), {torch.nn.Linear}, dtype=torch.qint8)


def children_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_peer_script(script: str, args: list[str], log: Path, timeout_s: float) -> dict:
    """Run peer_scripts/SCRIPT in .venv-peers; returns its JSON result or {"error": why}."""
    if not PEERS_PYTHON.exists():
        return {"error": f"{PEERS_PYTHON} not found: run scripts/setup_peers.sh (benchmark-only peers)"}
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [str(PEERS_PYTHON), str(PEER_SCRIPTS / script), *args]
    try:
        with open(log, "w") as f:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"{script}: no result within {timeout_s:.0f} s (log: {log})"}
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = log.read_text().strip().splitlines()[-1:] if log.exists() else []
        return {"error": f"{script} exited {p.returncode}: {tail[0][:300] if tail else 'no output'} (log: {log})"}
    return json.loads(lines[-1])

