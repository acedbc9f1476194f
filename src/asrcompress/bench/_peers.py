"""Peer tools the benchmark compares against, each at its best documented setting, on the same
fp32 ONNX export (or, for PyTorch tools, the same PyTorch model).

In-process (the project's own environment): ONNX Runtime's `quantize_dynamic` (defaults, and
MatMul-only per-channel with and without `reduce_range`), `quantize_static` (QDQ, MinMax and
Entropy calibration on 64 dev utterances), `MatMulNBitsQuantizer` (block 32 and 128, accuracy
level 0 and 4), and `torch.ao` dynamic int8. Intel Neural Compressor, Olive, NNCF and AIMET run
in `.venv-peers` (scripts/setup_peers.sh) through `bench/peer_scripts/` (package data), so their
pins never reach asrcompress's runtime dependencies. Each peer is a resumable step.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

PEER_SCRIPTS = Path(__file__).resolve().parent / "peer_scripts"  # package data, found beside this module
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding `asrcompress`, for the peers' PYTHONPATH
# The peers' environment (scripts/setup_peers.sh makes it in the working folder).
PEERS_PYTHON = Path(os.environ.get("ASRCOMPRESS_PEERS_PYTHON", ".venv-peers/bin/python")).absolute()
CALIBRATION_UTTERANCES = 64


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


def ort_dynamic(fp32: Path, out: Path, **options) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, **options)


def ort_static(fp32: Path, out: Path, inputs: list[np.ndarray], input_name: str, method: str) -> None:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(inputs)

        def get_next(self) -> dict | None:
            x = next(self.it, None)
            return None if x is None else {input_name: x}

    quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    calibrate_method=getattr(CalibrationMethod, method))


def ort_nbits(fp32: Path, out: Path, block_size: int, accuracy_level: int) -> None:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)  # a line per node
    q = MatMulNBitsQuantizer(onnx.load(str(fp32)), block_size=block_size, accuracy_level=accuracy_level)
    q.process()
    q.model.save_model_to_file(str(out), use_external_data_format=False)


def torch_ao_dynamic(model: torch.nn.Module) -> torch.nn.Module:
    """torch.ao dynamic int8 quantization of every nn.Linear (attention's out_proj is excluded by torch)."""
    import copy
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(model).eval(), {torch.nn.Linear}, dtype=torch.qint8)


ONNX_PEERS: dict[str, tuple[str, Callable]] = {
    "ort_dynamic_default": ("quantize_dynamic, QInt8 weights, every other option at its default (Conv too)",
                            lambda f, o, c: ort_dynamic(f, o)),
    "ort_dynamic_matmul": ("quantize_dynamic, MatMul only, per-channel, QInt8",
                           lambda f, o, c: ort_dynamic(f, o, op_types_to_quantize=["MatMul"], per_channel=True)),
    "ort_dynamic_matmul_rr": ("quantize_dynamic, MatMul only, per-channel, reduce_range (7-bit weights)",
                              lambda f, o, c: ort_dynamic(f, o, op_types_to_quantize=["MatMul"], per_channel=True,
                                                          reduce_range=True)),
    "ort_static_minmax": (f"quantize_static, QDQ, per-channel, MinMax on {CALIBRATION_UTTERANCES} dev utterances",
                          lambda f, o, c: ort_static(f, o, *c(), "MinMax")),
    "ort_static_entropy": (f"quantize_static, QDQ, per-channel, Entropy on {CALIBRATION_UTTERANCES} dev utterances",
                           lambda f, o, c: ort_static(f, o, *c(), "Entropy")),
    **{f"ort_nbits_b{b}_a{a}": (f"MatMulNBitsQuantizer, 4-bit, block {b}, accuracy_level {a} (asymmetric, its default)",
                                lambda f, o, c, b=b, a=a: ort_nbits(f, o, b, a)) for b in (32, 128) for a in (0, 4)},
}
SCRIPT_PEERS = {"intel_neural_compressor": "inc_tune.py", "nncf": "nncf_tune.py", "aimet": "aimet_tune.py",
                "olive": "olive_tune.py"}


def _finished(state, name: str) -> bool:
    """A peer that ran; one that failed is tried again by the next run (its cause may be gone)."""
    done = state.done(name)
    return bool(done) and not done.get("error")


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


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


def peer_arms(o, run: Path, base, base_onnx: Path, state, log) -> list:
    """Every peer's arm: made once, kept in the run's state."""
    from ..data import load_manifest, read_audio
    from ..models import features_of
    from ._harness import Arm, Point, arm_from

    peers = run / "peers"
    peers.mkdir(exist_ok=True)
    spec = features_of(base)

    def calibration() -> tuple[list[np.ndarray], str]:
        """64 dev utterances as 3 s graph inputs (cut or zero-padded: the Entropy calibrator
        stacks its inputs, so they must share one shape)."""
        dev = load_manifest(o.corpus / "dev.jsonl")[0][:CALIBRATION_UTTERANCES]
        steps = spec.steps(3 * spec.sample_rate)
        out = []
        for u in dev:
            x = spec.prepare(read_audio(u.audio_filepath))[:, :steps]
            pad = [(0, 0)] * x.ndim
            pad[1] = (0, steps - x.shape[1])
            out.append(np.pad(x, pad))
        return out, spec.input_name

    arms = []
    for name, (note, make) in ONNX_PEERS.items():
        if not _finished(state, name):
            out, cpu0, t0 = peers / f"{name}.onnx", time.process_time(), time.perf_counter()
            try:
                with _quiet_root_logger():  # ORT's quantizers warn through the root logger, per tensor
                    make(base_onnx, out, calibration)
                arm = Arm(name, "peer", [Point(name, name, str(out))], time.process_time() - cpu0, None,
                          f"{note} ({time.perf_counter() - t0:.0f} s)")
            except Exception as e:  # a peer that fails is reported with its error, not fatal
                arm = Arm(name, "peer", [], time.process_time() - cpu0, None, note, f"{type(e).__name__}: {e}")
            state.finish(name, asdict(arm))
        arms.append(arm_from(state.done(name)))
    if not state.done("torch_ao_dynamic"):
        cpu0 = time.process_time()
        arm = Arm("torch_ao_dynamic", "peer", [Point("torch_ao_dynamic", "torch_ao_dynamic", "torch_ao",
                                                     runtime="pytorch")], time.process_time() - cpu0, None,
                  "torch.ao.quantization.quantize_dynamic({nn.Linear}, qint8); PyTorch runtime, against PyTorch fp32")
        state.finish("torch_ao_dynamic", asdict(arm))
    arms.append(arm_from(state.done("torch_ao_dynamic")))
    for name, script in SCRIPT_PEERS.items():
        if not o.peers:
            break
        if not _finished(state, name):
            log(f"bench: peer {name} ({script} in .venv-peers)")
            c0 = children_cpu_seconds()
            res = run_peer_script(script, ["--model", str(o.model.resolve()), "--corpus", str(o.corpus.resolve()),
                                           "--onnx", str(base_onnx.resolve()), "--out", str(peers.resolve()),
                                           "--test-manifest", str(o.test_manifest.resolve()),
                                           "--dev-utterances", str(min(o.dev_utterances, 100)),
                                           *(["--quick"] if o.quick else [])],
                                  peers / f"{name}.log", o.peer_timeout_s)
            cpu = children_cpu_seconds() - c0
            pts = [Point(name, p["label"], p["file"], runtime=p.get("runtime", "onnx"),
                         extra={k: v for k, v in p.items() if k not in ("label", "file", "runtime")})
                   for p in res.get("points", [])]
            state.finish(name, asdict(Arm(name, "peer", pts, res.get("cpu_seconds", cpu), None, res.get("note", ""),
                                          res.get("error", ""))))
        arms.append(arm_from(state.done(name)))
    return arms
