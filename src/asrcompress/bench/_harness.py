"""`asrcompress bench`: the search against random search, uniform hand policies and peer tools.

Every arm produces points (a deployable model each); `_score` then scores all of them the same
way: per-utterance word errors on the bench's own test set (a seed used nowhere else, voices
never in training) with the deployed decoder and greedy, a paired bootstrap interval of each
point's WER ratio to the base, the bytes its .onnx stores, and its latency in one interleaved
loop with the fp32 base. Every finished step is kept (`_state`): the same command resumes.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .._cpu import cpu_seconds
from .._outputs import refuse_overlap, write_text
from .._shipped import profiles_dir
from ..compression import DistillConfig, uniform_policies
from ..export import export_onnx
from ..models import features_of, load_model
from ..search import load_space
from ._state import State, file_sha256, run_key, source_fingerprint

TEST_SEED = 90_417  # the bench's test set: a seed no doc, demo or test uses
TRIALS_PER_CPU_MINUTE = 6  # a budget's trial cap: no trial here is faster than 10 CPU-seconds


@dataclass
class BenchOptions:
    model: Path
    corpus: Path  # train / dev for the search arms and distillation
    space: Path
    budget_minutes: float  # one-stage: CPU-minutes per search arm and seed (staged: the options set its cost)
    workers: int
    out: Path  # docs/benchmarks (the .md / .json / figure stem)
    workdir: Path  # models, logs, journals and the resumable state
    tracking_uri: str
    profiles: Path = field(default_factory=profiles_dir)
    seeds: int = 3
    dev_utterances: int = 100
    kd_utterances: int = 2000
    test_utterances: int = 2000
    peers: bool = True
    peer_timeout_s: float = 1800.0
    command: str = ""
    quick: bool = False
    test_manifest: Path | None = None  # set by run_bench: the bench's own test split
    strategy: str = "staged"  # the search arms': staged (nsga2 vs random proposals) or one-stage (tpe vs random)
    staged: dict = field(default_factory=dict)  # StagedOptions fields for both staged arms (sampler excepted)


@dataclass
class Point:
    arm: str
    label: str
    file: str  # the .onnx the point deploys, or (PyTorch points) a folder or emissions file
    runtime: str = "onnx"  # onnx | pytorch
    seed: int | None = None
    format_aware_ratio: float | None = None  # asrcompress's `inspect` figure (not deployed)
    extra: dict = field(default_factory=dict)


@dataclass
class Arm:
    name: str
    kind: str  # search | random | uniform | peer
    points: list[Point]
    cpu_seconds: float
    seed: int | None = None
    note: str = ""
    error: str = ""


def arm_from(doc: dict) -> Arm:
    return Arm(**{**doc, "points": [Point(**p) for p in doc["points"]]})


def _search_arm(o: BenchOptions, run: Path, name: str, sampler: str, seed: int) -> Arm:
    from ..search import run_search

    study = f"bench-{run.name}-{name}-s{seed}"
    cfg = {
        "space": str(o.space.resolve()), "model": str(o.model.resolve()), "corpus": str(o.corpus.resolve()),
        "profiles": str(o.profiles.resolve()), "sampler": sampler, "seed": seed,
        "budget": max(10, int(o.budget_minutes * TRIALS_PER_CPU_MINUTE)),
        "cpu_budget_s": o.budget_minutes * 60 / o.workers,
        "storage": f"journal:{(run / 'optuna.journal').resolve()}", "study": study, "workers": o.workers,
        "tracking_uri": o.tracking_uri, "workdir": str((run / f"{name}-s{seed}").resolve()),
        "dev_utterances": o.dev_utterances, "kd_utterances": o.kd_utterances, "threads": 1,
        "baselines": True, "rescore_test": False,  # both arms start from the same queued hand policies
    }
    # The driver's own CPU plus what each worker reports of itself: the workers are its children,
    # so `cpu_seconds` here would count them twice.
    cpu0 = time.process_time()
    summary = run_search(cfg)
    cpu = time.process_time() - cpu0 + sum(w.get("cpu_seconds", 0.0) for w in summary["workers"])
    points = []
    for t in _dev_front(cfg):
        tdir = Path(cfg["workdir"]) / f"trial_{t.number:04d}"
        if (tdir / "model.onnx").exists():
            points.append(Point(name, f"trial {t.number}", str(tdir / "model.onnx"), seed=seed,
                                format_aware_ratio=t.user_attrs["size_ratio"],
                                extra={"dev": t.values, "baseline": t.user_attrs.get("baseline")}))
    counts = summary["trials"]
    note = (f"{sum(counts.values())} trials ({counts.get('COMPLETE', 0)} complete, {counts.get('PRUNED', 0)} "
            f"early-stopped, {counts.get('FAIL', 0)} failed), {len(points)} on the dev front, study {study}")
    return Arm(name, name, points, cpu, seed, note)


def _dev_front(cfg: dict) -> list:
    """Non-dominated COMPLETE trials on their dev objectives, feasible or not: the benchmark applies
    its own tolerance on test, and both search arms are treated alike."""
    from optuna.trial import TrialState

    from ..search import load_study
    from ._report import dominates

    done = load_study(cfg["storage"], cfg["study"]).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [t for t in done if not any(dominates(u.values, t.values) for u in done)]


def _uniform_arm(o: BenchOptions, run: Path) -> Arm:
    from ..hardware import load_profiles
    from ..search import Context, run_trial

    space = load_space(o.space)
    ctx = Context.load(o.model, o.corpus, space, load_profiles(o.profiles, space.profiles), run / "uniform",
                       o.dev_utterances, o.kd_utterances)
    kd = DistillConfig(steps=space.distill_steps, temperature=2.0, alpha=0.5, lr=space.lr)
    points, errors = [], []
    cpu0 = cpu_seconds()  # as the staged arms count: this process and its children
    for i, (label, rules) in enumerate(uniform_policies().items()):  # every method's hand policies
        doc = {"version": 1, "rules": rules, "distill": kd.__dict__}
        try:
            v = run_trial(ctx, doc, i, None)
        except Exception as e:  # one policy failing must not end the benchmark
            errors.append(f"{label}: {type(e).__name__}: {e}")
            continue
        points.append(Point("uniform", label, str(Path(v.model_dir) / "model.onnx"),
                            format_aware_ratio=v.size_ratio, extra={"dev_wer": v.objectives["wer"]}))
    note = f"each with {kd.steps} KD steps (T={kd.temperature}, alpha={kd.alpha}, lr={kd.lr})"
    return Arm("uniform", "uniform", points, cpu_seconds() - cpu0, None, note, "; ".join(errors))


def _test_set(o: BenchOptions, log) -> Path:
    """The bench's own test split: TEST_SEED, voices never in training, the base model's generator."""
    from ..data import build_corpus

    folder = o.workdir / f"testset-{TEST_SEED}-{o.test_utterances}"
    if not (folder / "test.jsonl").is_file():
        card = json.loads((o.model / "model_card.json").read_text()) if (o.model / "model_card.json").is_file() else {}
        generator = (card.get("corpus") or {}).get("generator_version") or 1
        log(f"bench: synthesising {o.test_utterances} test utterances (seed {TEST_SEED}, generator {generator})")
        build_corpus(folder, seed=TEST_SEED, counts={"test": o.test_utterances}, generator=generator)
    return folder / "test.jsonl"


def key_parts(o: BenchOptions, model_sha: str, test_sha: str, corpus_fp: str) -> dict:
    """What a run's results depend on, hashed into its folder's name. Not the number of seeds:
    each seed's arms are steps of their own (`search-s0`, ...), so a finished run of 1 seed
    grows into 3 with `--seeds 3`, the scan, seed 0, the uniform policies, the peers and every
    scored point kept, and the report covers the first `--seeds` seeds."""
    key = {"model": model_sha, "test": test_sha, "corpus": corpus_fp, "space": file_sha256(o.space),
           "budget": o.budget_minutes, "workers": o.workers, "dev": o.dev_utterances, "kd": o.kd_utterances,
           "peers": o.peers}
    if o.strategy != "one-stage":  # a one-stage run's folder keeps its earlier key
        key |= {"strategy": o.strategy, "staged": o.staged}
    return key


def run_bench(o: BenchOptions, log=print) -> dict:
    from ..search import corpus_fingerprint, model_sha256
    from ._peers import peer_arms
    from ._report import report

    inputs = {"model": o.model, "corpus": o.corpus, "space": o.space}
    refuse_overlap(o.workdir, inputs, "--workdir")
    for suffix in (".md", ".json", ".html", ".png"):
        refuse_overlap(o.out.with_suffix(suffix), inputs)
    o.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    test_manifest = o.test_manifest = _test_set(o, log)
    key = key_parts(o, model_sha256(o.model), file_sha256(test_manifest), corpus_fingerprint(o.corpus))
    run = o.workdir / run_key(key)
    state = State(run, key)
    log(f"bench: run folder {run} (re-running this command resumes it)")
    codes = state.code(source_fingerprint())
    if len(codes) > 1:  # the key holds the inputs, not the code: say what a mixed run is
        log(f"bench: warning: the code changed while this run was under way (sources {' -> '.join(codes)}); "
            "steps finished earlier were made by older code. Delete the run folder to start over.")
    base = load_model(o.model)
    base_onnx = run / "base.onnx"
    if not base_onnx.is_file():
        export_onnx(base, {}, base_onnx)
    arms: list[Arm] = []
    if o.strategy == "staged" and not state.done("scan"):
        from ._staged_arm import shared_scan

        log("bench: the sensitivity scan both staged arms share (its CPU time is charged to each)")
        state.finish("scan", shared_scan(o, run))
    from ._staged_arm import staged_arm
    samplers = ("nsga2", "random") if o.strategy == "staged" else ("tpe", "random")
    for seed in range(o.seeds):
        for name, sampler in zip(("search", "random"), samplers):
            step = f"{name}-s{seed}"
            if not state.done(step):
                budget = (f"staged, {sampler} proposals" if o.strategy == "staged" else
                          f"{o.budget_minutes} CPU-minutes on {o.workers} worker(s)")
                log(f"bench: {name} arm, seed {seed}: {budget}")
                arm = (staged_arm(o, run, name, sampler, seed, state.done("scan")["cpu_seconds"], log)
                       if o.strategy == "staged" else _search_arm(o, run, name, sampler, seed))
                state.finish(step, asdict(arm))
            arms.append(arm_from(state.done(step)))
    if not state.done("uniform"):
        log("bench: uniform hand policies")
        state.finish("uniform", asdict(_uniform_arm(o, run)))
    arms.append(arm_from(state.done("uniform")))
    log("bench: peer tools")
    arms.extend(peer_arms(o, run, base, base_onnx, state, log))
    log("bench: scoring every point on the test set; then latency, all ONNX points interleaved")
    doc = report(o, arms, base, base_onnx, test_manifest, state, log, t0)
    doc["features"] = features_of(base).to_dict()
    write_text(o.out.with_suffix(".json"), json.dumps(doc, indent=1, default=str) + "\n")
    return doc
