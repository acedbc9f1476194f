"""One trial: compress, distil with early stopping, then score WER, latency and memory."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from .._outputs import output_folder
from ..compression import DistillConfig, Monitor, Policy, Recovery, compress_and_recover, size_report
from ..compression import write_compression
from ..compression import load_kd_data
from ..data import load_manifest
from ..export import export_onnx
from ..hardware import Profile, graph_ops, measure_latency, predict_ms
from ..models import load_model, read_config, save_model
from ..objectives import DecoderConfig, evaluate, measure, resolve_slice, select
from ._space import Space

REFERENCE_S = 8.0  # latency objective: one 8 s utterance
HOPELESS_MARGIN = 0.10  # WER points above the worst front point (or the base) that count as hopeless


@dataclass(frozen=True)
class TrialResult:
    """A finished trial: its objectives (by the registry's names) and what it records besides."""

    objectives: dict[str, float]
    size_ratio: float
    finetune_steps: int
    kd_reverted: bool
    trial_seconds: float
    model_dir: str
    dev_utterances: int  # what the trial was scored on, from the study's settings
    kd_utterances: int

    def attrs(self) -> dict:
        """The Optuna user attributes every backend records (`TRIAL_ATTRS`)."""
        return {k: float(v) if isinstance(v, bool) else v for k, v in
                ((k, getattr(self, k)) for k in TRIAL_ATTRS)}

    def metrics(self) -> dict[str, float]:
        """Every figure, for MLflow."""
        return {**self.objectives, **{k: v for k, v in self.attrs().items() if k != "model_dir"}}

    def values(self, names: list[str]) -> list[float]:
        return [self.objectives[n] for n in names]


# What a finished trial records on its Optuna trial besides its objectives (every backend).
TRIAL_ATTRS = ("size_ratio", "finetune_steps", "kd_reverted", "trial_seconds", "model_dir", "dev_utterances",
               "kd_utterances")


class TrialStopped(Exception):
    """The trial ended without final objectives: early-stopped (pruned) or failed."""

    def __init__(self, reason: str, pruned: bool, saved_steps: int = 0) -> None:
        super().__init__(reason)
        self.reason, self.pruned, self.saved_steps = reason, pruned, saved_steps


@dataclass
class Context:
    """What every trial of a study shares; loaded once per worker process."""

    base: nn.Module
    base_dir: Path
    corpus: Path
    space: Space
    layer_names: list[str]
    profiles: dict[str, Profile]
    kd_data: tuple[list, list]
    dev: list
    early_dev: list
    decoder: DecoderConfig
    fp32_bytes: int
    workdir: Path
    trial_timeout_s: float | None = None  # the study's per-trial wall-clock budget
    device: str = "cpu"  # where this worker's distillation runs (its --device)
    slices: dict = field(default_factory=dict)  # slice name -> dev utterances, for wer@SLICE

    @classmethod
    def load(cls, base_dir: Path, corpus: Path, space: Space, profiles: dict[str, Profile], workdir: Path,
             dev_utterances: int, kd_utterances: int, decoder: dict | None = None) -> "Context":
        from ..compression import discover_layers

        base = load_model(base_dir)
        dev, _ = load_manifest(Path(corpus) / "dev.jsonl")
        if not dev:
            from ..errors import UserError

            raise UserError(f"{Path(corpus) / 'dev.jsonl'}: no usable dev utterances to score trials on")
        slices = {}
        for name in space.slice_names:  # up to dev_utterances of the whole dev split that match
            slices[name] = select(dev, resolve_slice(name, dict(space.slices)))[:dev_utterances]
            if not slices[name]:
                from ..errors import UserError

                raise UserError(f"{Path(corpus) / 'dev.jsonl'}: slice {name!r} selects no dev utterance "
                                "(check the manifest's fields)")
        dev = dev[:dev_utterances]
        return cls(slices=slices, base=base, base_dir=Path(base_dir), corpus=Path(corpus), space=space,
                   layer_names=[l.name for l in discover_layers(base)], profiles=profiles,
                   kd_data=load_kd_data(corpus, kd_utterances) if space.distill_steps else ([], []),
                   dev=dev, early_dev=dev[: max(10, len(dev) // 3)],
                   decoder=DecoderConfig.from_dict(decoder or {"kind": "greedy"}),
                   fp32_bytes=size_report(base)["total_bytes"], workdir=Path(workdir))


def latency_ms(onnx_path: Path, profile: Profile, ops: list | None = None) -> float:
    """`ops`: the graph's costs at REFERENCE_S, when the caller has them already."""
    if profile.measure:
        return measure_latency([onnx_path], profile.threads, [REFERENCE_S], repeats=10)[0][REFERENCE_S]
    return predict_ms(ops or graph_ops(onnx_path, REFERENCE_S), profile)[0]


def dev_wer(ctx: Context, model: nn.Module) -> float:
    return evaluate(model, ctx.base_dir, ctx.dev, ctx.decoder, workers=1, batch_seconds=0)["wer"]


class TrialProbe:
    """The objectives' view of one model (`objectives.Probe`): each figure computed once, when
    an objective asks for it."""

    def __init__(self, ctx: Context, model: nn.Module, states: dict, out: Path, wer: float | None) -> None:
        self.ctx, self.model, self.states, self.out = ctx, model, states, out
        self._dev = {"wer": wer} if wer is not None else {}
        self._cache: dict = {}

    def _once(self, key: str, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def _scores(self) -> dict:
        if "cer" not in self._dev:  # one decode gives both; a known WER is kept as given
            r = evaluate(self.model, self.ctx.base_dir, self.ctx.dev, self.ctx.decoder, workers=1, batch_seconds=0)
            self._dev = {"wer": self._dev.get("wer", r["wer"]), "cer": r["cer"]}
        return self._dev

    def wer(self, slice_name: str | None = None) -> float:
        if slice_name is None:
            return self._dev["wer"] if "wer" in self._dev else self._scores()["wer"]
        return self._once(f"wer@{slice_name}", lambda: evaluate(
            self.model, self.ctx.base_dir, self.ctx.slices[slice_name], self.ctx.decoder, workers=1,
            batch_seconds=0)["wer"])

    def cer(self) -> float:
        return self._scores()["cer"]

    def onnx(self) -> Path:
        return self._once("onnx", lambda: Path(export_onnx(self.model, self.states, self.out / "model.onnx")["path"]))

    def ops(self) -> list:
        return self._once("ops", lambda: graph_ops(self.onnx(), REFERENCE_S))

    def size(self) -> dict:
        return self._once("size", lambda: size_report(self.model, self.states, self.ctx.fp32_bytes))

    def stored_bytes(self) -> int:
        return self.size()["total_bytes"]

    def peak_activation_bytes(self) -> int:
        return max(op.act_bytes for op in self.ops())

    def latency_ms(self, profile: str) -> float:
        return latency_ms(self.onnx(), self.ctx.profiles[profile], self.ops())


def objectives_of(ctx: Context, model: nn.Module, states: dict, out: Path,
                  wer: float | None = None) -> dict[str, float]:
    """The space's objectives (the objective registry measures each on a probe of the model;
    `wer`: dev WER when the caller has it), plus `size_ratio`. The ONNX file is always written:
    it is what export and the benchmark score."""
    probe = TrialProbe(ctx, model, states, out, wer)
    probe.onnx()
    values = measure(probe, list(ctx.space.objectives))
    values["size_ratio"] = probe.size()["ratio"]
    return values


def _deadline(t0: float, limit: float | None):
    """A check to call between steps: past the trial's budget it stops the trial (cooperatively:
    a step already running finishes first)."""

    def check(*_: object) -> None:
        if limit is not None and time.perf_counter() - t0 > limit:
            raise TrialStopped(f"timed out: {time.perf_counter() - t0:.1f} s exceeds the trial budget of "
                               f"{limit:g} s", pruned=False)

    return check


class TrialMonitor(Monitor):
    """A trial's watch over recovery: its time budget, the early stop of a hopeless trial (dev
    WER on a third of dev after the first slice), and dev WER for keep-the-better."""

    def __init__(self, ctx: Context, worst_front_wer: float | None, in_time) -> None:
        self.ctx, self.worst, self.in_time = ctx, worst_front_wer, in_time

    def on_step(self, done: int, total: int) -> None:
        self.in_time()

    def check(self, model, done: int, total: int) -> None:
        if self.worst is None:
            return
        early = evaluate(model, self.ctx.base_dir, self.ctx.early_dev, self.ctx.decoder, workers=1,
                         batch_seconds=0)["wer"]
        limit = max(self.worst, 0.0) + HOPELESS_MARGIN
        if early > limit:
            raise TrialStopped(f"early-stopped: dev WER {early:.3f} after {done} steps > {limit:.3f}",
                               pruned=True, saved_steps=total - done)

    def score(self, model) -> float:
        self.in_time()
        return dev_wer(self.ctx, model)


def run_trial(ctx: Context, policy_doc: dict, number: int, worst_front_wer: float | None) -> TrialResult:
    """Metrics of one policy; the compressed model is kept under workdir/trial_NNNN. The model is
    built by `compress_and_recover`, as `asrcompress compress` builds it (seed = trial number)."""
    t0 = time.perf_counter()
    in_time = _deadline(t0, ctx.trial_timeout_s)
    # A draw of every choice at its neutral value is the uncompressed model: measured, not refused.
    policy = Policy.from_dict(policy_doc, source=f"trial {number}", allow_empty=True)
    kd: DistillConfig = policy.distill or DistillConfig(steps=0)
    try:
        built = compress_and_recover(ctx.base, policy, ctx.kd_data if ctx.kd_data[0] else None,
                                     Recovery(seed=number, device=ctx.device), TrialMonitor(ctx, worst_front_wer, in_time))
    except FloatingPointError as e:
        raise TrialStopped(f"diverged: {e}", pruned=False) from None
    student, states = built.model, built.states
    in_time()
    out = ctx.workdir / f"trial_{number:04d}"
    with output_folder(out, {"base model": ctx.base_dir, "corpus": ctx.corpus}, overwrite=True,
                       kind="trial", command=f"trial {number}") as stage:
        save_model(student, stage, decoder=read_config(ctx.base_dir).get("decoder"))
        write_compression(stage, ctx.base_dir, policy, states, {"trial": number, "distill": kd.__dict__,
                                                                "fp32_bytes": ctx.fp32_bytes})
        values = objectives_of(ctx, student, states, stage, built.score)
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise TrialStopped(f"non-finite objective {bad[0]}", pruned=False)
    size_ratio = values.pop("size_ratio")
    return TrialResult(objectives=values, size_ratio=size_ratio, finetune_steps=built.distill["steps"],
                       kd_reverted=built.reverted, trial_seconds=time.perf_counter() - t0, model_dir=str(out),
                       dev_utterances=len(ctx.dev), kd_utterances=len(ctx.kd_data[0]))
