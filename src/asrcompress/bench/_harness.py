"""`asrcompress bench`: the search against random search, uniform hand policies and peer tools.

Every arm produces points (a deployable model each); `_report` then scores all of them the
same way in one run: test WER (greedy CTC, one utterance at a time, on the ONNX model that ships),
host latency of one 8 s utterance timed interleaved across all ONNX points, and stored size.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from .._outputs import refuse_overlap, write_text
from .._shipped import profiles_dir
from ..compression import DistillConfig, uniform_policies
from ..export import export_onnx
from ..models import load_model
from ..models import state_dict_bytes
from ._peers import children_cpu_seconds, onnx_stored_bytes, ort_int4, ort_int8, run_peer_script, torch_ao_dynamic
from ..search import load_space

@dataclass
class BenchOptions:
    model: Path
    corpus: Path
    space: Path
    budget_minutes: float  # CPU-minutes per search arm
    workers: int
    out: Path  # docs/benchmarks (the .md / .json / figure stem)
    workdir: Path  # models, logs and the studies' journal
    tracking_uri: str
    profiles: Path = field(default_factory=profiles_dir)
    seed: int = 0
    dev_utterances: int = 100
    kd_utterances: int = 2000
    test_utterances: int | None = None
    peers: bool = True
    peer_timeout_s: float = 900.0
    command: str = ""
    quick: bool = False


@dataclass
class Point:
    arm: str
    label: str
    size_ratio: float  # fp32 bytes / stored bytes, each in the arm's own accounting (see `size_basis`)
    size_basis: str
    onnx: Path | None = None  # scored with ONNX Runtime when set; else PyTorch (extra["model"]) or by the peer
    extra: dict = field(default_factory=dict)


@dataclass
class Arm:
    name: str
    kind: str  # search | random | uniform | peer
    points: list[Point]
    cpu_seconds: float
    note: str = ""
    error: str = ""


def _search_arm(o: BenchOptions, name: str, sampler: str, stamp: str) -> Arm:
    from ..search import run_search

    cfg = {
        "space": str(o.space.resolve()), "model": str(o.model.resolve()), "corpus": str(o.corpus.resolve()),
        "profiles": str(o.profiles.resolve()), "budget": 100_000, "sampler": sampler,
        "cpu_budget_s": o.budget_minutes * 60 / o.workers,
        "seed": o.seed, "storage": f"journal:{(o.workdir / 'optuna.journal').resolve()}",
        "study": f"bench-{stamp}-{name}", "workers": o.workers, "tracking_uri": o.tracking_uri,
        "workdir": str((o.workdir / name).resolve()), "dev_utterances": o.dev_utterances,
        "kd_utterances": o.kd_utterances, "threads": 1, "baselines": sampler != "random", "rescore_test": False,
    }
    cpu0 = time.process_time()
    summary = run_search(cfg)
    cpu = time.process_time() - cpu0
    if o.workers > 1:
        cpu += sum(w.get("cpu_seconds", 0.0) for w in summary["workers"])
    points = []
    for t in _dev_front(cfg):
        tdir = o.workdir / name / f"trial_{t.number:04d}"
        if (tdir / "model.onnx").exists():
            points.append(Point(name, f"trial {t.number}", t.user_attrs["size_ratio"], "format-aware (inspect)",
                                onnx=tdir / "model.onnx", extra={"dev": t.values, "baseline": t.user_attrs.get("baseline")}))
    counts = summary["trials"]
    note = (f"{sum(counts.values())} trials ({counts.get('COMPLETE', 0)} complete, {counts.get('PRUNED', 0)} "
            f"early-stopped, {counts.get('FAIL', 0)} failed), {len(points)} on the dev front, "
            f"study {cfg['study']}")
    return Arm(name, name, points, cpu, note)


def _dev_front(cfg: dict) -> list:
    """Non-dominated COMPLETE trials on their dev objectives, feasible or not: the benchmark applies
    its own tolerance on test, and both search arms are treated alike."""
    from optuna.trial import TrialState

    from ..search import load_study
    from ._report import _dominates

    done = load_study(cfg["storage"], cfg["study"]).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [t for t in done if not any(_dominates(u.values, t.values) for u in done)]


def _uniform_arm(o: BenchOptions) -> Arm:
    from ..search import Context, run_trial

    space = load_space(o.space)
    from ..hardware import load_profiles

    ctx = Context.load(o.model, o.corpus, space, load_profiles(o.profiles, space.profiles), o.workdir / "uniform",
                       o.dev_utterances, o.kd_utterances)
    kd = DistillConfig(steps=space.distill_steps, temperature=2.0, alpha=0.5, lr=space.lr)
    points, errors = [], []
    cpu0 = time.process_time()
    for i, (label, rules) in enumerate(uniform_policies().items()):  # every method's hand policies
        doc = {"version": 1, "rules": rules, "distill": kd.__dict__}
        try:
            v = run_trial(ctx, doc, i, None)
        except Exception as e:  # one policy failing must not end the benchmark
            errors.append(f"{label}: {type(e).__name__}: {e}")
            continue
        points.append(Point("uniform", label, v.size_ratio, "format-aware (inspect)",
                            onnx=Path(v.model_dir) / "model.onnx", extra={"dev_wer": v.objectives["wer"]}))
    note = f"each with {kd.steps} KD steps (T={kd.temperature}, alpha={kd.alpha}, lr={kd.lr})"
    return Arm("uniform", "uniform", points, time.process_time() - cpu0, note, "; ".join(errors))


def _peer_arms(o: BenchOptions, base_onnx: Path) -> list[Arm]:
    arms = []
    base_bytes = onnx_stored_bytes(base_onnx)
    for name, fn, note in (("ort_quantize_dynamic", ort_int8, "onnxruntime.quantization.quantize_dynamic, QInt8, defaults"),
                           ("ort_matmul_nbits", ort_int4, "MatMulNBitsQuantizer, 4-bit, block 32, symmetric")):
        cpu0 = time.process_time()
        out = o.workdir / "peers" / f"{name}.onnx"
        try:
            fn(base_onnx, out)
        except Exception as e:
            arms.append(Arm(name, "peer", [], time.process_time() - cpu0, note, f"{type(e).__name__}: {e}"))
            continue
        ratio = base_bytes / onnx_stored_bytes(out)
        arms.append(Arm(name, "peer", [Point(name, name, ratio, "ONNX stored tensors", onnx=out)],
                        time.process_time() - cpu0, note))
    cpu0 = time.process_time()
    base = load_model(o.model)
    ao = torch_ao_dynamic(base)
    ratio = state_dict_bytes(base) / state_dict_bytes(ao)
    arms.append(Arm("torch_ao_dynamic", "peer", [Point("torch_ao_dynamic", "torch_ao_dynamic", ratio,
                                                       "torch.save state dict", extra={"model": ao})],
                    time.process_time() - cpu0, "torch.ao.quantization.quantize_dynamic({nn.Linear}, qint8); "
                    "PyTorch runtime, speed-up against PyTorch fp32"))
    if o.peers:
        for script, name in (("inc_tune.py", "intel_neural_compressor"), ("olive_tune.py", "olive")):
            c0 = children_cpu_seconds()
            res = run_peer_script(script, ["--model", str(o.model.resolve()), "--corpus", str(o.corpus.resolve()),
                                           "--onnx", str(base_onnx.resolve()), "--out", str((o.workdir / "peers").resolve()),
                                           "--dev-utterances", str(o.dev_utterances),
                                           *(["--test-utterances", str(o.test_utterances)] if o.test_utterances else []),
                                           *(["--quick"] if o.quick else [])],
                                  o.workdir / "peers" / f"{name}.log", o.peer_timeout_s)
            cpu = children_cpu_seconds() - c0
            if "error" in res:
                arms.append(Arm(name, "peer", [], cpu, "", res["error"]))
                continue
            pts = []
            for p in res["points"]:
                if p.get("onnx"):
                    ratio = base_bytes / onnx_stored_bytes(Path(p["onnx"]))
                    pts.append(Point(name, p["label"], ratio, "ONNX stored tensors", onnx=Path(p["onnx"]), extra=p))
                else:  # a PyTorch model the peer scored itself, side by side with PyTorch fp32
                    pts.append(Point(name, p["label"], p["size_ratio"], p["size_basis"], extra=p))
            arms.append(Arm(name, "peer", pts, res.get("cpu_seconds", cpu), res.get("note", "")))
    return arms


def run_bench(o: BenchOptions, log=print) -> dict:
    from ._report import report

    stamp = time.strftime("%Y%m%d-%H%M%S")
    inputs = {"model": o.model, "corpus": o.corpus, "space": o.space}
    refuse_overlap(o.workdir, inputs, "--workdir")
    for suffix in (".md", ".json", ".html", ".png"):
        refuse_overlap(o.out.with_suffix(suffix), inputs)
    o.workdir.mkdir(parents=True, exist_ok=True)
    (o.workdir / "peers").mkdir(exist_ok=True)
    t0 = time.perf_counter()
    base = load_model(o.model)
    base_onnx = Path(export_onnx(base, {}, o.workdir / "base.onnx")["path"])
    arms: list[Arm] = []
    for name, sampler in (("search", "tpe"), ("random", "random")):
        log(f"bench: {name} arm, {o.budget_minutes} CPU-minutes on {o.workers} worker(s)")
        arms.append(_search_arm(o, name, sampler, stamp))
    log("bench: uniform hand policies")
    arms.append(_uniform_arm(o))
    log("bench: peer tools")
    arms.extend(_peer_arms(o, base_onnx))
    log("bench: scoring every point on test, latency side by side")
    doc = report(o, arms, base, base_onnx, stamp, log, t0)
    write_text(o.out.with_suffix(".json"), json.dumps(doc, indent=1, default=str) + "\n")
    return doc
