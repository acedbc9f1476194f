"""CTC training of the base model, with checkpoint/resume so training can span sessions."""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
import torchaudio

from ..data import Utterance, collate as _collate, load_manifest, make_batches, read_int16 as _read_int16
from ..objectives import cer, wer
from ._conformer_ctc import ConformerCTC, ModelConfig
from ._io import save_model
from ._tokens import encode, greedy_decode

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 60
    batch_seconds: float = 320.0  # audio seconds per batch (padded)
    peak_lr: float = 2e-3
    warmup_steps: int = 800
    weight_decay: float = 1e-3
    max_minutes: float = 170.0
    seed: int = 0
    workers: int = 0  # audio-loading processes; 0 = all cores
    # Regularisation against the synthesisers' few voice qualities (generator 2's corpora):
    warp: float = 0.0  # vocal-tract-length perturbation: mel axis stretched by a factor in [1-warp, 1+warp]
    masks: int = 2  # SpecAugment: this many frequency (<= 15 bins) and time (<= 30 frames) masks


def vtlp(feats: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Vocal-tract-length perturbation on log-mel features (Jaitly & Hinton 2013): utterance i's
    mel axis is read at f * factors[i] (linear interpolation, clamped at the top bin), which
    moves every formant by that factor. (N, T, F) -> (N, T, F)."""
    n, _, f = feats.shape
    pos = (torch.arange(f, device=feats.device)[None, :] * factors[:, None]).clamp(max=f - 1)  # (N, F)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=f - 1)
    w = (pos - lo)[:, None, :]  # (N, 1, F)
    take = lambda idx: torch.gather(feats, 2, idx[:, None, :].expand(-1, feats.shape[1], -1))  # noqa: E731
    return take(lo) * (1 - w) + take(hi) * w


def _load_waves(utts: list[Utterance], workers: int) -> list[np.ndarray]:
    paths = [u.audio_filepath for u in utts]
    with get_context("fork").Pool(workers) as pool:
        waves = pool.map(_read_int16, paths, chunksize=64)
    return waves


class _SpecAugment(torch.nn.Module):
    def __init__(self, masks: int = 2, warp: float = 0.0) -> None:
        super().__init__()
        self.freq = torchaudio.transforms.FrequencyMasking(15)
        self.time = torchaudio.transforms.TimeMasking(30, p=0.1)
        self.masks, self.warp = masks, warp

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if self.warp:
            factors = 1 + self.warp * (2 * torch.rand(feats.shape[0], device=feats.device) - 1)
            feats = vtlp(feats, factors)
        x = feats.transpose(1, 2)  # (N, T, F) -> (N, F, T) as torchaudio's masks expect
        for _ in range(self.masks):
            x = self.time(self.freq(x))
        return x.transpose(1, 2)


@torch.no_grad()
def greedy_eval(model: ConformerCTC, waves: list[np.ndarray], texts: list[str], device: torch.device,
                batch_seconds: float = 200.0) -> dict:
    model.eval()
    hyps = [""] * len(waves)
    for idx in make_batches([w.size / 16000 for w in waves], batch_seconds):
        wave, lens = _collate(waves, idx, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            lp, out_lens = model.log_probs(wave, lens)
        for i, h in zip(idx, greedy_decode(lp.float(), out_lens)):
            hyps[i] = h
    model.train()
    return {"wer": wer(texts, hyps), "cer": cer(texts, hyps)}


def _save_checkpoint(path: Path, model, opt, sched, state: dict) -> None:
    # Written aside and renamed, so a kill mid-write leaves the previous checkpoint intact.
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "state": json.dumps(state)}, tmp)
    tmp.replace(path)


def train(
    corpus: Path,
    out: Path,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    device: torch.device,
    log: Callable[[str], None] = print,
    on_step: Callable[[int, int], None] | None = None,
) -> dict:
    """Train (or resume) into `out`; returns a summary with timing and greedy dev WER."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    workers = cfg.workers or os.cpu_count() or 1
    train_utts, rep = load_manifest(corpus / "train.jsonl")
    dev_utts, dev_rep = load_manifest(corpus / "dev.jsonl")
    log(rep.summary())
    log(dev_rep.summary())
    # A generator-2 corpus has a dev split from a synthesiser held out of training: the kept
    # epoch is the one best on both devs (the mean of their greedy WERs), not on in-domain alone.
    cross_utts = load_manifest(corpus / "dev_flite.jsonl")[0] if (corpus / "dev_flite.jsonl").is_file() else []
    t0 = time.time()
    train_waves = _load_waves(train_utts, workers)
    dev_waves = _load_waves(dev_utts, workers)
    cross_waves = _load_waves(cross_utts, workers) if cross_utts else []
    log(f"loaded audio in {time.time() - t0:.0f}s")
    targets = [torch.tensor(encode(u.text)) for u in train_utts]
    dev_texts = [u.text for u in dev_utts]
    batches = make_batches([u.duration for u in train_utts], cfg.batch_seconds)
    total_steps = cfg.epochs * len(batches)

    model = ConformerCTC(model_cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.peak_lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    state = {"epoch": 0, "step": 0, "best_wer": float("inf"), "train_seconds": 0.0, "history": []}
    ckpt = out / CHECKPOINT
    if ckpt.exists():
        saved = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        state = json.loads(saved["state"])
        log(f"resumed from {ckpt} at epoch {state['epoch']}, step {state['step']}")

    ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)
    spec_aug = _SpecAugment(cfg.masks, cfg.warp).to(device)
    session_start = time.time()
    model.train()
    stopped_early = False
    while state["epoch"] < cfg.epochs:
        epoch_start = time.time()
        rng = random.Random(cfg.seed * 1000 + state["epoch"])
        order = list(range(len(batches)))
        rng.shuffle(order)
        losses = []
        for b in order:
            idx = batches[b]
            wave, lens = _collate(train_waves, idx, device)
            tgt = [targets[i] for i in idx]
            tgt_lens = torch.tensor([t.numel() for t in tgt])
            with torch.no_grad():
                feats, frames = model.features(wave, lens)
                feats = spec_aug(feats)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                lp, out_lens = model(feats, frames)
            loss = ctc(lp.float().transpose(0, 1), torch.cat(tgt), out_lens.cpu(), tgt_lens)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            state["step"] += 1
            losses.append(loss.item())
            if on_step:
                on_step(state["step"], total_steps)
            if (time.time() - session_start) / 60 > cfg.max_minutes:
                stopped_early = True
                break
        state["train_seconds"] += time.time() - epoch_start
        if stopped_early:
            break
        state["epoch"] += 1
        dev = greedy_eval(model, dev_waves, dev_texts, device)
        if cross_waves:
            cross = greedy_eval(model, cross_waves, [u.text for u in cross_utts], device)
            dev |= {"cross_wer": cross["wer"], "cross_cer": cross["cer"], "selection_wer": (dev["wer"] + cross["wer"]) / 2}
        state["history"].append({"epoch": state["epoch"], "loss": float(np.mean(losses)), **dev})
        log(f"epoch {state['epoch']}/{cfg.epochs} loss {np.mean(losses):.3f} dev greedy WER {dev['wer']:.3f} "
            f"CER {dev['cer']:.3f}" + (f" dev_flite WER {dev['cross_wer']:.3f}" if cross_waves else "")
            + f" ({time.time() - epoch_start:.0f}s)")
        score = dev.get("selection_wer", dev["wer"])
        if score < state["best_wer"]:
            state["best_wer"] = score
            save_model(model, out)
        _save_checkpoint(ckpt, model, opt, sched, state)
    if stopped_early:
        _save_checkpoint(ckpt, model, opt, sched, state)
        log(f"time budget of {cfg.max_minutes} min reached; run the same command again to resume")
    return {"finished": not stopped_early, "train_config": asdict(cfg), "steps": state["step"],
            "epochs": state["epoch"], "train_seconds": round(state["train_seconds"], 1),
            "best_dev_greedy_wer": state["best_wer"], "selected_on": "mean of dev and dev_flite greedy WER"
            if cross_utts else "dev greedy WER", "history": state["history"],
            "batches_per_epoch": len(batches), "train_utterances": len(train_utts)}
