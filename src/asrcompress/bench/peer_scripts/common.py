"""Shared by the peer scripts (run in .venv-peers with PYTHONPATH=src): data, greedy dev WER for
the peers' own tuning loops, timing, and the emissions the bench scores a PyTorch point by.

A peer script prints one JSON line: {"points": [{"label", "file", "runtime", ...}], "cpu_seconds",
"note"} or {"error": why}. An ONNX point's file is its .onnx (the bench scores and times it with
every other ONNX point); a PyTorch point's file is an .npz of its per-utterance log-probabilities on
the bench's test set, with its latency measured here against PyTorch fp32, interleaved."""

from __future__ import annotations

import argparse
from pathlib import Path

import jiwer
import numpy as np
import torch

from asrcompress.data import load_manifest, read_audio
from asrcompress.models import greedy_decode, log_probs
from asrcompress.models import state_dict_bytes, torch_latency_ms  # noqa: F401 (for the scripts)

TEST_SECONDS = 8.0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--onnx", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dev-utterances", type=int, default=100)
    ap.add_argument("--test-manifest", type=Path, required=True)
    ap.add_argument("--quick", action="store_true")
    return ap


@torch.no_grad()
def save_emissions(model, manifest: Path, out: Path) -> Path:
    """Per-utterance (T', V) log-probabilities on the bench's test set, one utterance at a time."""
    arrays = {}
    for i, u in enumerate(load_manifest(manifest)[0]):
        w = read_audio(u.audio_filepath)
        lp, n = log_probs(model, torch.from_numpy(w)[None].float(), torch.tensor([w.size]))
        arrays[str(i)] = lp[0, : int(n[0])].numpy()
    np.savez(out, **arrays)
    return out


def load_split(corpus: Path, split: str, n: int | None) -> tuple[list[np.ndarray], list[str]]:
    utts = load_manifest(corpus / f"{split}.jsonl")[0]
    utts = utts[:n] if n else utts
    return [read_audio(u.audio_filepath) for u in utts], [u.text for u in utts]


@torch.no_grad()
def torch_wer(model, waves: list[np.ndarray], refs: list[str]) -> float:
    hyps = []
    for w in waves:
        lp, n = log_probs(model, torch.from_numpy(w)[None].float(), torch.tensor([w.size]))
        hyps.append(greedy_decode(lp, n)[0])
    return float(jiwer.wer(refs, hyps))
