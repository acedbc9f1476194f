"""compress a model folder with a policy file, optionally with KD recovery, and save it."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from ..errors import UserError
from ._apply import compress_model
from ._configs import ConfigError, DistillConfig
from ._distill import distill, regularizer, taylor_gradients
from ._io import write_compression
from ._policy import Policy
from ._size import size_report


def load_kd_data(corpus: Path, max_utterances: int, seed: int = 0) -> tuple[list, list[torch.Tensor]]:
    """A random subset of the training split, held in RAM as int16 (as base training does)."""
    from ..data._manifest import load_manifest
    from ..models._tokens import encode
    from ..models._train import _read_int16

    manifest = Path(corpus) / "train.jsonl"
    if not manifest.is_file():
        raise UserError(f"{manifest}: not found; --corpus must be a corpus folder with train.jsonl")
    utts, _ = load_manifest(manifest)
    if not utts:
        raise UserError(f"{manifest}: no usable utterances for distillation")
    utts = random.Random(seed).sample(utts, min(max_utterances, len(utts)))
    return [_read_int16(u.audio_filepath) for u in utts], [torch.tensor(encode(u.text)) for u in utts]


def distill_config(policy: Policy, steps: int | None, temperature: float | None, alpha: float | None) -> DistillConfig:
    cfg = policy.distill or DistillConfig(steps=0)
    try:
        return replace(cfg, **{k: v for k, v in
                               {"steps": steps, "temperature": temperature, "alpha": alpha}.items() if v is not None})
    except ConfigError as e:
        raise UserError(str(e)) from None


def compress_folder(model_dir: Path, policy: Policy, out: Path, kd: DistillConfig, corpus: Path | None,
                    command: str, kd_utterances: int = 4000, log: Callable[[str], None] = print,
                    on_step: Callable[[int, int], None] | None = None) -> dict:
    from ..models import load_model, read_config, save_model

    teacher = load_model(model_dir)
    uses_reg = any(key == "sparsity_reg" for r in policy.rules for key, cfg in r.methods if cfg is not None)
    uses_taylor = any(key == "structured" and getattr(cfg, "criterion", "") == "taylor"
                      for r in policy.rules for key, cfg in r.methods if cfg is not None)
    if (kd.steps or uses_reg or uses_taylor) and corpus is None:
        raise UserError("--corpus is required for distillation recovery, sparsity_reg fine-tuning and "
                        "the taylor structured-pruning criterion")
    data = load_kd_data(corpus, kd_utterances) if (kd.steps or uses_reg or uses_taylor) else None
    t0 = time.perf_counter()
    student, states, skipped = compress_model(
        teacher, policy, regularizer(teacher, *data, kd) if uses_reg else None,
        taylor_gradients(*data) if uses_taylor else None)
    compress_seconds = time.perf_counter() - t0
    for note in skipped[:5]:
        log(f"skipped {note}")
    if len(skipped) > 5:
        log(f"... and {len(skipped) - 5} more layer/method pairs that do not apply")
    kd_summary = {"steps": 0}
    if kd.steps:
        try:
            kd_summary = distill(student, teacher, states, *data, kd, on_step=on_step)
        except FloatingPointError as e:
            raise UserError(f"{e}; nothing was written (try a smaller distill.lr)") from None
    out = Path(out)
    save_model(student, out, decoder=read_config(model_dir).get("decoder"))
    report = size_report(student, states, fp32_bytes=size_report(teacher)["total_bytes"])
    write_compression(out, model_dir, policy, states, {
        "distill": {**kd.__dict__, **kd_summary} if kd.steps else None,
        "compress_seconds": round(compress_seconds, 2), "skipped": skipped, "command": command,
        "total_bytes": report["total_bytes"], "fp32_bytes": report["fp32_bytes"], "ratio": report["ratio"],
    })
    return {"ratio": report["ratio"], "total_bytes": report["total_bytes"], "distill": kd_summary,
            "compress_seconds": compress_seconds}
