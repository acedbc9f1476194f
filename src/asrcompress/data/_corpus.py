"""The built-in benchmark corpus: synthesised, augmented, split by sentence and by voice."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import soundfile as sf

from ._synth import SAMPLE_RATE, augment, require_tools, synthesize, voices_for
from ._text import SPLITS, generate_sentences

SIZES: dict[str, dict[str, int]] = {
    "small": {"train": 400, "dev": 100, "test": 200},
    "default": {"train": 12_000, "dev": 800, "test": 800},
}
FLITE_SHARE = 0.25
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class _Job:
    root: str
    split: str
    index: int
    text: str
    voices: tuple[str, ...]
    flite_voices: tuple[str, ...]
    seed: int


def _init_worker() -> None:
    # Many processes each running torch's default thread pool oversubscribe the cores badly.
    import torch

    torch.set_num_threads(1)


def _make_utterance(job: _Job) -> dict:
    # One stream per utterance, so the result does not depend on worker count or order.
    rng = np.random.default_rng([job.seed, SPLITS.index(job.split), job.index])
    pool = job.flite_voices if job.flite_voices and rng.random() < FLITE_SHARE else job.voices
    voice = str(rng.choice(pool))
    rate = float(rng.uniform(0.8, 1.25))
    pitch = int(rng.integers(25, 76))
    x = synthesize(job.text, voice, rate, pitch)
    x, aug = augment(x, rng)
    rel = f"{job.split}/{job.index:06d}.flac"
    sf.write(os.path.join(job.root, rel), x, SAMPLE_RATE, subtype="PCM_16")
    return {
        "audio_filepath": rel,
        "text": job.text,
        "duration": round(x.size / SAMPLE_RATE, 3),
        "voice": voice,
        "rate": round(rate, 3),
        "pitch": pitch,
        "augmentation": aug,
    }


def build_corpus(
    out: Path,
    seed: int = 0,
    size: str = "default",
    workers: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    counts: dict[str, int] | None = None,
) -> dict:
    """Synthesise every split into `out` and write `{split}.jsonl` manifests + corpus.json.

    `counts` overrides the utterances per split of the named size (tests use a few).
    """
    require_tools()
    counts = counts or SIZES[size]
    workers = workers or os.cpu_count() or 1
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"seed": seed, "size": size, "generator_version": GENERATOR_VERSION, "splits": {}}
    # A split already synthesised here with the same settings is kept: an interrupted build
    # (in `corpus`'s resumable staging folder) continues where it stopped.
    settings = {"seed": seed, "size": size, "counts": counts, "generator_version": GENERATOR_VERSION}
    done_path = out / ".splits-done.json"
    done = json.loads(done_path.read_text()) if done_path.is_file() else {}
    if done.get("settings") != settings:
        done = {"settings": settings, "splits": {}}
    start = time.time()
    ctx = get_context("fork")
    for split in SPLITS:
        if split in done["splits"] and (out / f"{split}.jsonl").is_file():
            summary["splits"][split] = done["splits"][split]
            continue
        (out / split).mkdir(exist_ok=True)
        voices = voices_for(split)
        espeak = tuple(v for v in voices if v.startswith("espeak:"))
        flite = tuple(v for v in voices if v.startswith("flite:"))
        texts = generate_sentences(split, counts[split], seed)
        jobs = [_Job(str(out), split, i, t, espeak, flite, seed) for i, t in enumerate(texts)]
        rows = []
        with ctx.Pool(workers, _init_worker) as pool:
            for row in pool.imap(_make_utterance, jobs, chunksize=8):
                rows.append(row)
                if progress:
                    progress(split, len(rows), len(jobs))
        tmp = out / f"{split}.jsonl.tmp"
        with open(tmp, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        tmp.replace(out / f"{split}.jsonl")
        summary["splits"][split] = {
            "utterances": len(rows),
            "hours": round(sum(r["duration"] for r in rows) / 3600, 3),
            "voices": len({r["voice"] for r in rows}),
        }
        done["splits"][split] = summary["splits"][split]
        done_path.write_text(json.dumps(done))
    summary["synthesis_seconds"] = round(time.time() - start, 1)
    (out / "corpus.json").write_text(json.dumps(summary, indent=2) + "\n")
    done_path.unlink(missing_ok=True)
    return summary
