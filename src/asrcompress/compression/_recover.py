"""The one way a policy becomes a model: compress, then recover by distillation.

`asrcompress compress`, every search trial (local worker, Ray), the bench's arms and the
Python API all call `compress_and_recover`, so one policy, data and seed give one model
wherever it is built. What differs between callers is only what they watch, through a
`Monitor`: progress and deadlines per step, an early check after the first slice of steps
(a search stops hopeless trials there), and the score that keeps the better of the model
before and after distillation (dev WER; recovery must never cost accuracy).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from torch import nn

from ._apply import LayerState, compress_model
from ._configs import DistillConfig
from ._distill import TeacherCache, distill, regularizer, taylor_gradients
from ._calibration import Calibration
from ._policy import Policy, PolicyError
from ._registry import handler_for, ordered


@dataclass(frozen=True)
class Recovery:
    """How recovery runs; the same for `compress` and a trial."""

    batch_seconds: float = 16.0  # audio per distillation batch
    check_fraction: float = 1 / 3  # the monitor's check runs after this share of the steps
    seed: int = 0  # batch order of distillation and of the taylor gradients
    device: str = "cpu"  # where distillation steps run ("cuda": a GPU); the result is on the CPU either way


class Monitor:
    """What a caller watches. The defaults watch nothing."""

    def on_step(self, done: int, total: int) -> None:
        """After every distillation step (progress bars, deadlines: raise to stop)."""

    def check(self, model: nn.Module, done: int, total: int) -> None:
        """After the first slice of steps, on the baked model (raise to stop a hopeless run)."""

    def score(self, model: nn.Module) -> float | None:
        """Lower is better (dev WER); None: no keep-the-better."""
        return None


class Watch(Monitor):
    """A monitor from plain functions: `progress(done, total)` per step, and `score(model)` for
    keep-the-better (None: keep the distilled model)."""

    def __init__(self, progress: Callable[[int, int], None] | None = None,
                 score: Callable[[nn.Module], float] | None = None) -> None:
        self._progress, self._score = progress, score

    def on_step(self, done: int, total: int) -> None:
        if self._progress:
            self._progress(done, total)

    def score(self, model: nn.Module) -> float | None:
        return self._score(model) if self._score else None


@dataclass
class Compressed:
    model: nn.Module
    states: dict[str, LayerState]
    skipped: list[str]
    distill: dict = field(default_factory=lambda: {"steps": 0})
    reverted: bool = False  # distillation made the score worse, so the model before it was kept
    score: float | None = None  # the kept model's score, when the monitor gives one
    compress_seconds: float = 0.0


def needs_data(policy: Policy) -> str | None:
    """Why the policy needs training data (None when it does not)."""
    if policy.distill is not None and policy.distill.steps:
        return "distillation recovery"
    for key, cfg in policy.model_methods:
        why = handler_for(cfg).needs_calibration(cfg)
        if why:
            return why
    for rule in policy.rules:
        for key, cfg in rule.methods:
            if cfg is None:
                continue
            if any(m.key == key and m.training for m in ordered()):
                return f"{key} fine-tuning"
            why = handler_for(cfg).needs_gradients(cfg) or handler_for(cfg).needs_calibration(cfg)
            if why:
                return why
    return None


def compress_and_recover(base: nn.Module, policy: Policy, data: tuple[list, list] | None = None,
                         recovery: Recovery = Recovery(), monitor: Monitor | None = None) -> Compressed:
    """Compress `base` (left untouched) with `policy`, then distil it from `base` for the
    policy's `distill.steps` on `data` = (int16 waves, token targets).

    Distillation runs in two slices with the monitor's check between them; FloatingPointError
    (divergence) and whatever the monitor raises propagate, and nothing is half-applied to `base`."""
    monitor = monitor or Monitor()
    kd = policy.distill or DistillConfig(steps=0)
    why = needs_data(policy)
    if why and not (data and data[0]):
        raise PolicyError(f"{policy.source}: {why} needs training data (give a corpus)")
    t0 = time.perf_counter()
    reg = regularizer(base, *data, kd, batch_seconds=recovery.batch_seconds, device=recovery.device) \
        if data and data[0] else None
    grads = taylor_gradients(*data, seed=recovery.seed) if data and data[0] else None
    calib = Calibration(data[0]) if data and data[0] else None
    student, states, skipped = compress_model(base, policy, reg, grads, calib)
    out = Compressed(student, states, skipped, compress_seconds=time.perf_counter() - t0)
    if not kd.steps or not (policy.rules or policy.model_methods):  # nothing compressed: nothing to recover
        return out
    before = copy.deepcopy(student.state_dict())
    score_before = monitor.score(student)
    first = max(1, math.ceil(kd.steps * recovery.check_fraction))
    t1 = time.perf_counter()
    # one run in two slices: one learning-rate schedule over all steps, AdamW's moments carried
    # over, and the teacher's outputs cached for both
    cache = TeacherCache(base, data[0], recovery.batch_seconds)
    s1 = distill(student, base, states, *data, replace(kd, steps=first), batch_seconds=recovery.batch_seconds,
                 seed=recovery.seed, on_step=lambda d, _t: monitor.on_step(d, kd.steps), total=kd.steps,
                 teacher_cache=cache, device=recovery.device)
    monitor.check(student, first, kd.steps)
    s2 = None
    if kd.steps > first:
        s2 = distill(student, base, states, *data, replace(kd, steps=kd.steps - first),
                     batch_seconds=recovery.batch_seconds, seed=recovery.seed + 10_000,
                     on_step=lambda d, _t: monitor.on_step(first + d, kd.steps), offset=first, total=kd.steps,
                     opt_state=s1.get("opt_state"), teacher_cache=cache, device=recovery.device)
    out.distill = {"steps": kd.steps, "seconds": round(time.perf_counter() - t1, 1), "loss_first": s1["loss_first"],
                   "loss_last": (s2 or s1)["loss_last"]}
    out.score = monitor.score(student) if score_before is not None else None
    if score_before is not None and out.score > score_before:
        student.load_state_dict(before)
        out.score, out.reverted = score_before, True
    return out
