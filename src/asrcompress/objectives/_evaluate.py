"""WER/CER and real-time factor of a model on a dataset, with the configured decoder."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from ..data import Utterance, read_audio
from ..errors import UserError
from ..models import log_probs
from ._decode import DecoderConfig, build_decoder
from ._wer import cer, wer

_WORKER_DECODER: Callable[[torch.Tensor], str] | None = None


def _init_worker(model_dir: str, cfg: dict) -> None:
    global _WORKER_DECODER
    torch.set_num_threads(1)
    _WORKER_DECODER = build_decoder(Path(model_dir), DecoderConfig.from_dict(cfg))


def _decode_one(lp: np.ndarray) -> str:
    return _WORKER_DECODER(torch.from_numpy(lp))


@torch.no_grad()
def emissions(model: torch.nn.Module, waves: list[np.ndarray], batch_seconds: float = 60.0) -> list[np.ndarray]:
    """Per-utterance (T', V) log-probabilities, batching utterances of similar length.

    A model with its own `emissions` (an ONNX Runtime session) computes them itself."""
    from ..data import make_batches

    if hasattr(model, "emissions"):
        return model.emissions(waves)
    model.eval()
    out: list[np.ndarray | None] = [None] * len(waves)
    for idx in make_batches([w.size / 16000 for w in waves], batch_seconds):
        lens = torch.tensor([waves[i].size for i in idx])
        batch = torch.zeros(len(idx), int(lens.max()))
        for row, i in enumerate(idx):
            batch[row, : waves[i].size] = torch.from_numpy(waves[i])
        lp, out_lens = log_probs(model, batch, lens)
        for row, i in enumerate(idx):
            out[i] = lp[row, : out_lens[row]].numpy().copy()
    return out  # type: ignore[return-value]


def decode_all(lps: list[np.ndarray], model_dir: Path, cfg: DecoderConfig, workers: int = 0) -> list[str]:
    workers = workers or os.cpu_count() or 1
    # Built here first, so a decoder that cannot be built is one error in this process: a pool
    # whose initializer raises replaces its workers for ever.
    dec = build_decoder(model_dir, cfg)
    if cfg.kind == "greedy" or workers == 1 or len(lps) <= 1:
        return [dec(torch.from_numpy(lp)) for lp in lps]
    del dec
    with get_context("fork").Pool(workers, _init_worker, (str(model_dir), cfg.to_dict())) as pool:
        return pool.map(_decode_one, lps, chunksize=8)


def load_waves(utts: list[Utterance]) -> tuple[list[np.ndarray], list[str]]:
    """Read audio; an unreadable file is an error naming it (it passed the header check)."""
    waves = [read_audio(u.audio_filepath) for u in utts]
    return waves, [u.text for u in utts]


def evaluate(model: torch.nn.Module, model_dir: Path, utts: list[Utterance], cfg: DecoderConfig,
             workers: int = 0, batch_seconds: float = 60.0) -> dict:
    """`batch_seconds=0` runs one utterance at a time, as a deployment does: padding in a batch
    changes the last frames' features and the convolutions' view of them."""
    if not utts:
        raise UserError("no usable utterances to evaluate")
    waves, refs = load_waves(utts)
    audio_seconds = sum(w.size for w in waves) / 16000
    t0 = time.perf_counter()
    lps = emissions(model, waves, batch_seconds)
    hyps = decode_all(lps, model_dir, cfg, workers)
    elapsed = time.perf_counter() - t0
    return {
        "wer": wer(refs, hyps),
        "cer": cer(refs, hyps),
        "utterances": len(utts),
        "rtf": elapsed / audio_seconds,
        "decoder": cfg.kind,
        "audio_seconds": round(audio_seconds, 1),
        "examples": [{"ref": r, "hyp": h} for r, h in list(zip(refs, hyps))[:5]],
    }


def dev_scorer(model_dir: Path, corpus: Path, utterances: int, decoder: DecoderConfig | None = None,
               ) -> Callable[[torch.nn.Module], float] | None:
    """Dev WER of a model on the corpus's first `utterances` dev utterances, one at a time with
    `decoder` (greedy by default): the score a search trial keeps the better model by. None when
    the corpus has no dev split or `utterances` is 0."""
    from ..data import load_manifest

    path = Path(corpus) / "dev.jsonl"
    if utterances <= 0 or not path.is_file():
        return None
    dev, _ = load_manifest(path)
    dev = dev[:utterances]
    if not dev:
        return None
    cfg = decoder or DecoderConfig.from_dict({"kind": "greedy"})
    return lambda model: evaluate(model, model_dir, dev, cfg, workers=1, batch_seconds=0)["wer"]
