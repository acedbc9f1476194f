"""The public Python API: the CLI's main jobs as functions (see docs/api.md).

    import asrcompress as ac
    model = ac.load_model("models/conformer_ctc_base")
    small, report = ac.compress(model, "int8")
    study = ac.search("quick", model="models/conformer_ctc_base", data="data/demo", trials=3)
    ac.front(study)
    ac.export(study, pick="knee", out="runs/knee")

Every function goes through the same code as its command: `compress` through
`compress_and_recover` (the walk a search trial takes), `search` through the study driver.
Errors a user can fix raise `asrcompress.errors.UserError` with a one-line message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from .compression import Compressed, Policy, Recovery, compress_and_recover, size_report
from .errors import UserError

PathLike = str | Path


def load_model(path: PathLike) -> nn.Module:
    """A model folder (base or compressed) as a PyTorch module, weights loaded exactly."""
    from .models import load_model as _load

    return _load(Path(path))


def _policy(policy: Policy | dict | PathLike) -> Policy:
    from ._shipped import resolve

    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, dict):
        return Policy.from_dict(policy)
    return Policy.load(resolve("policy", Path(policy)))


def compress(model: nn.Module | PathLike, policy: Policy | dict | PathLike, data: PathLike | None = None,
             recovery: Recovery | None = None, *, kd_utterances: int = 4000, dev_utterances: int = 100,
             ) -> tuple[nn.Module, dict]:
    """Compress `model` with `policy` (a Policy, a policy document, a YAML/JSON file or a shipped
    name such as "int8"), and recover it by distillation when the policy asks for steps.

    `data`: a corpus folder (train.jsonl for distillation; dev.jsonl, when present, keeps the
    better of the model before and after distillation, on `dev_utterances` of it).
    Returns the compressed model and a report: stored bytes, ratio to fp32, per-layer state,
    skipped layer/method pairs, distillation summary and whether it was reverted."""
    from .compression import Watch, load_kd_data, needs_data
    from .objectives import dev_scorer

    base = load_model(model) if isinstance(model, (str, Path)) else model
    pol = _policy(policy)
    why = needs_data(pol)
    if why and data is None:
        raise UserError(f"{pol.source}: {why} needs training data: give data=<corpus folder>")
    kd_data = load_kd_data(Path(data), kd_utterances) if why else None
    score = None
    if data is not None and pol.distill is not None and pol.distill.steps and isinstance(model, (str, Path)):
        score = dev_scorer(Path(model), Path(data), dev_utterances)

    result: Compressed = compress_and_recover(base, pol, kd_data, recovery or Recovery(), Watch(score=score))
    report = size_report(result.model, result.states, fp32_bytes=size_report(base)["total_bytes"])
    return result.model, {
        "total_bytes": report["total_bytes"], "fp32_bytes": report["fp32_bytes"], "ratio": report["ratio"],
        "layers": report["layers"], "states": result.states, "skipped": result.skipped, "distill": result.distill,
        "reverted": result.reverted, "dev_wer": result.score,
    }


def search(space: PathLike, model: PathLike | None = None, data: PathLike | None = None, *, trials: int,
           storage: str | None = None, study: str | None = None, workers: int = 1, sampler: str | None = None,
           seed: int = 0, dev_utterances: int | None = None, kd_utterances: int | None = None,
           profiles: PathLike | None = None, tracking_uri: str | None = None, baselines: bool = True,
           trial_timeout_s: float | None = None, device: str = "cpu") -> Any:
    """Run (or resume) a multi-objective search of per-layer policies; returns the optuna.Study.

    `space`: a space YAML or a shipped name ("quick", "robust", ...); `model`: a model folder
    (default: the shipped base model); `data`: a corpus folder with train/dev/test.jsonl;
    `device`: where the trials' distillation runs ("cuda": a GPU)."""
    from .search import driver_config, load_study, run_search

    cfg = driver_config(space=space, model=model, corpus=data, trials=trials, sampler=sampler, storage=storage,
                        study=study, workers=workers, tracking_uri=tracking_uri, seed=seed,
                        dev_utterances=dev_utterances, kd_utterances=kd_utterances, profiles=profiles,
                        trial_timeout_s=trial_timeout_s)
    cfg["baselines"], cfg["device"] = baselines, device
    run_search(cfg)
    return load_study(cfg["storage"], cfg["study"])


def sensitivity(space: PathLike, model: PathLike | None = None, data: PathLike = "data/default", *,
                utterances: int = 16, kd_utterances: int = 32, cache: PathLike = "mlruns/sensitivity",
                tracking_uri: str | None = None, study: str | None = None, check: int = 30,
                profiles: PathLike | None = None, latency: bool = True) -> dict:
    """Each option of the space on its own (KL to the base per frame and greedy dWER on
    `utterances` dev utterances), with its exact bytes and, with `latency`, its predicted ms on
    the space's profiles; cached by model and audio hash; the additive model's check on
    `check` random combinations; logged to MLflow when `tracking_uri` is given."""
    from ._shipped import base_model
    from .search import run_sensitivity

    return run_sensitivity(Path(model) if model else base_model(), Path(data), Path(space), utterances,
                           kd_utterances, Path(cache), tracking_uri, study, check=check,
                           profiles=Path(profiles) if profiles else None, latency=latency)


def propose(space: PathLike, out: PathLike, model: PathLike | None = None, data: PathLike = "data/default", *,
            utterances: int = 16, kd_utterances: int = 32, cache: PathLike = "mlruns/sensitivity", trials: int = 2000,
            population: int = 50, candidates: int = 24, seed: int = 0, dev_utterances: int = 0, score: bool = True,
            storage: str | None = None, study: str | None = None, profiles: PathLike | None = None,
            sampler: str = "nsga2") -> dict:
    """The search's first stages without training: the sensitivity scan (cached), a surrogate
    NSGA-II study of `trials` policies, the least-damaging pick under each size and latency
    budget, and (with `score`) each pick measured in ONNX on the dev split beside its
    prediction; written to the new folder `out` (candidates.json, one folder per candidate)."""
    from ._shipped import base_model
    from .search import run_propose

    return run_propose(Path(model) if model else base_model(), Path(data), Path(space), Path(out), utterances,
                       kd_utterances, Path(cache), trials, population, candidates, seed, dev_utterances, score,
                       storage, study, Path(profiles) if profiles else None, sampler=sampler)


def finalists(candidates: PathLike, *, rungs: tuple[int, ...] = (100, 300, 900), kd_utterances: int = 2000,
              lr: float = 2e-4, warmup: float = 0.05, batch_seconds: float = 16.0, seed: int = 0,
              storage: str | None = None, study: str | None = None, profiles: PathLike | None = None,
              time: bool = True, repeats: int = 20, test_manifest: PathLike | None = None, test_utterances: int = 0,
              min_kl: float = 0.05, device: str = "cpu", schedule: str = "per-rung") -> dict:
    """The search's fourth and fifth stages on the folder `propose` wrote: quantization-only
    candidates and those within `min_kl` of the base keep 0 distillation steps, the others are
    distilled by successive halving over `rungs` (only each budget's least-KL candidate goes
    on); the last rung's are measured in ONNX, timed with the base interleaved (`time`), and
    reported on test with both decoders; written to `candidates`/finalists.json and
    `candidates`/finalists/NAME/. `device`: where distillation runs ("cuda": a GPU); `schedule`:
    "per-rung" (each rung its own warm-up + cosine to 0) or "single" (one over the last rung)."""
    from .search import run_finalists

    return run_finalists(Path(candidates), tuple(rungs), kd_utterances, lr, warmup, batch_seconds, seed, storage,
                         study, Path(profiles) if profiles else None, None, time, repeats,
                         Path(test_manifest) if test_manifest else None, test_utterances, min_kl, device=device,
                         schedule=schedule)


def front(study: Any) -> list[dict]:
    """The study's feasible Pareto front, best WER first: trial, values, policy, size ratio, test WER."""
    from .search import front_rows

    return front_rows(study)


def export(study_or_model: Any, trial: int | None = None, pick: str | None = None, *, out: PathLike,
           register: bool = False, overwrite: bool = False) -> dict:
    """A deployment bundle. From a study: one trial (`trial=N`, or `pick="knee"` / "min
    latency@host where wer <= 0.12"), re-measured on its ONNX export; returns its model card.
    From a model, or the (model, report) pair `compress` returns: its ONNX file at `out` (a
    path ending in .onnx), with the int8/int4 kernels its report's states allow; returns the
    export report. `overwrite` lets a bundle replace a folder asrcompress did not write."""
    import optuna

    if isinstance(study_or_model, optuna.Study):
        from .search import export_trial

        if (trial is None) == (pick is None):
            raise UserError("give exactly one of trial=N or pick=\"...\"")
        return export_trial(study_or_model, trial, pick, Path(out), None, register, overwrite,
                            command="asrcompress.export")
    if isinstance(study_or_model, tuple):  # (model, report) as compress returns it
        model, report = study_or_model
        states = report.get("states")
    else:
        model, states = study_or_model, None
    from ._outputs import output_file
    from .export import export_onnx

    with output_file(Path(out), {}) as stage:  # an .onnx file, replaced in one rename
        report = export_onnx(model, states, stage)
    return {**report, "path": str(out)}
