"""The bench's search arms on the staged strategy: the same stages (scan, surrogate, candidates
scored in ONNX, finalists recovered by successive halving) with NSGA-II proposals ("search")
or uniformly random ones ("random"), so the comparison is the proposal mechanism alone.

The sensitivity scan is run once, first, into the run folder's cache, and its CPU time is
charged to every arm: each arm's search would have paid it (issue 18 counts the scan inside
the CPU-hour), and measuring it once keeps the bench from running it six times. The surrogate's
stacked-option prices are cached beside the scan, so the first arm pays for them and later arms
reuse what it priced; the arms' CPU figures say so. An arm's CPU is its process's and its
children's (the decoder pools), through the finalists' timing; the finalists' own test scoring
is the report's cost, not the search's, and is left out.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .._cpu import cpu_seconds
from ._harness import Arm, BenchOptions, Point


def _scan_cache(run: Path) -> Path:
    return run / "sensitivity"


def _options(o: BenchOptions, sampler: str):
    from ..search import StagedOptions

    return StagedOptions.from_dict({**o.staged, "sampler": sampler})


def shared_scan(o: BenchOptions, run: Path) -> dict:
    """Run the scan the staged arms share (cached in the run folder); its CPU seconds."""
    from ..search import staged_scan

    cpu0 = cpu_seconds()
    result = staged_scan(o.model, o.corpus, o.space, _options(o, "nsga2"), _scan_cache(run), o.profiles)
    return {"cpu_seconds": round(cpu_seconds() - cpu0, 1), "options": len(result["rows"])}


def _progress(log, name: str, seed: int):
    """One log line per stage (the bench's log is a file or CI's output, not a terminal)."""
    last = [None]
    t0 = time.perf_counter()

    def say(stage: str, done: int, total: int) -> None:
        if stage != last[0]:  # with the arm's wall minutes so far: where a long run spends its time
            last[0] = stage
            log(f"bench: {name} arm, seed {seed}: {stage} (at {(time.perf_counter() - t0) / 60:.1f} min)")
    return say


def staged_arm(o: BenchOptions, run: Path, name: str, sampler: str, seed: int, scan_cpu: float, log=print) -> Arm:
    """One staged search (`sampler` proposals, `seed`) in `run`; its finalists are the arm's points,
    its CPU seconds its own plus the shared scan's `scan_cpu`."""
    from ..search import driver_config, run_staged

    study = f"bench-{run.name}-{name}-s{seed}"
    storage = f"journal:{(run / 'optuna.journal').resolve()}"
    cfg = driver_config(space=o.space, model=o.model, corpus=o.corpus, storage=storage, study=study,
                        tracking_uri=o.tracking_uri, seed=seed, dev_utterances=o.dev_utterances,
                        kd_utterances=o.kd_utterances, profiles=o.profiles)
    cfg["workdir"] = str((run / f"{name}-s{seed}").resolve())
    cfg["scan_cache"] = str(_scan_cache(run).resolve())
    opts = _options(o, sampler)
    cpu0 = cpu_seconds()
    summary = run_staged(cfg, opts, set(), _progress(log, name, seed))
    folder = Path(summary["folder"])
    doc = json.loads((folder / "finalists.json").read_text())
    # The search's CPU: the stages through the finalists' timing. Their test scoring is left
    # out (the report scores every point on the bench's own test set).
    test_cpu = doc.get("test", {}).get("cpu_seconds", 0.0)
    cpu = cpu_seconds() - cpu0 - test_cpu
    base = doc["base"]
    points = [Point(name, f"{r['name']} ({r['best_steps']} KD steps)", r["onnx"], seed=seed,
                    format_aware_ratio=base["bytes"] / r["bytes"],
                    extra={"dev": [r["wer"], r["onnx_bytes"] / 1e6], "dev_wer": r["wer"]})
              for r in doc["finalists"] if r["finalist"] and Path(r["onnx"]).is_file()]
    note = (f"staged, {sampler} proposals: {opts.proposals} surrogate policies, {opts.candidates} candidates, rungs "
            f"{','.join(map(str, opts.rungs))} ({doc.get('schedule', 'single')} schedule); {len(points)} finalists, "
            f"study {study}; CPU includes the shared scan's {scan_cpu / 60:.1f} CPU-min, not the finalists' own test "
            f"scoring ({test_cpu / 60:.1f} CPU-min)")
    return Arm(name, name, points, cpu + scan_cpu, seed, note)
