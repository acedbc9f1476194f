"""compress a model folder with a policy file, optionally with KD recovery, and save it."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from ..errors import UserError
from ._configs import ConfigError, DistillConfig
from ._io import write_compression
from ._policy import Policy
from ._recover import Monitor, Recovery, compress_and_recover, needs_data
from ._size import size_report


def load_kd_data(corpus: Path, max_utterances: int, seed: int = 0) -> tuple[list, list[torch.Tensor]]:
    """A random subset of the training split, held in RAM as int16 (as base training does)."""
    from ..data import corpus_split
    from ..models import encode
    from ..data import read_int16 as _read_int16

    utts = corpus_split(corpus, "train", "utterances for distillation")
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
                    monitor: Monitor | None = None, recovery: Recovery = Recovery()) -> dict:
    """`asrcompress compress`: the same walk as a search trial (`compress_and_recover`), saved to `out`."""
    from ..models import load_model, read_config, save_model

    teacher = load_model(model_dir)
    policy = replace(policy, distill=kd)
    why = needs_data(policy)
    if why and corpus is None:
        raise UserError(f"--corpus is required for {why} (distillation recovery, sparsity_reg fine-tuning and "
                        "the taylor structured-pruning criterion train on its train.jsonl)")
    data = load_kd_data(corpus, kd_utterances) if why else None
    try:
        result = compress_and_recover(teacher, policy, data, recovery, monitor)
    except FloatingPointError as e:
        raise UserError(f"{e}; nothing was written (try a smaller distill.lr)") from None
    for note in result.skipped[:5]:
        log(f"skipped {note}")
    if len(result.skipped) > 5:
        log(f"... and {len(result.skipped) - 5} more layer/method pairs that do not apply")
    out = Path(out)
    save_model(result.model, out, decoder=read_config(model_dir).get("decoder"))
    report = size_report(result.model, result.states, fp32_bytes=size_report(teacher)["total_bytes"])
    write_compression(out, model_dir, policy, result.states, {
        "distill": {**kd.__dict__, **result.distill, "reverted": result.reverted, "device": recovery.device}
        if kd.steps else None,
        "compress_seconds": round(result.compress_seconds, 2), "skipped": result.skipped, "command": command,
        "total_bytes": report["total_bytes"], "fp32_bytes": report["fp32_bytes"], "ratio": report["ratio"],
    })
    return {"ratio": report["ratio"], "total_bytes": report["total_bytes"], "distill": result.distill,
            "reverted": result.reverted, "score": result.score, "compress_seconds": result.compress_seconds}
