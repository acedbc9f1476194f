"""The built-in benchmark corpus: synthesised, augmented, split by sentence and by voice.

Generator 1 (the shipped model's corpus): train / dev / test. Generator 2 adds a 7,000-word
domain with held-out words and templates (`_domain`), espeak 1.48 voices, pitch / tempo /
telephone perturbation, and cross-synthesiser splits: `dev_flite` (early stopping),
`test_flite` and `test_klatt` (synthesisers never in training; their text is test text).
"""

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

from ._domain import generate_sentences_v2
from ._synth import CROSS_SPLITS, SAMPLE_RATE, augment, augment_v2, require_tools, synthesize, voices_for, voices_for_v2
from ._text import SPLITS, generate_sentences

SIZES: dict[str, dict[str, int]] = {
    "small": {"train": 400, "dev": 100, "test": 200},
    "default": {"train": 12_000, "dev": 800, "test": 800},
}
SIZES_V2: dict[str, dict[str, int]] = {
    "small": {"train": 400, "dev": 100, "test": 200, "dev_flite": 50, "test_flite": 100, "test_klatt": 100},
    "default": {"train": 16_000, "dev": 800, "test": 1_000, "dev_flite": 300, "test_flite": 800, "test_klatt": 800},
}
GENERATORS = (1, 2)
DEFAULT_GENERATOR = 1  # the shipped model's corpus; 2 once a model trained on it ships
# The in-domain split whose text a cross-synthesiser split speaks.
TEXT_OF = {"dev_flite": "dev", "test_flite": "test", "test_klatt": "test"}
FLITE_SHARE = 0.25


@dataclass(frozen=True)
class _Job:
    root: str
    split: str
    index: int
    text: str
    voices: tuple[str, ...]
    flite_voices: tuple[str, ...]
    seed: int
    generator: int = 1


def _splits(generator: int) -> tuple[str, ...]:
    return SPLITS if generator == 1 else (*SPLITS, *CROSS_SPLITS)


def _texts(generator: int, counts: dict[str, int], seed: int, split: str) -> list[str]:
    """One split's sentences (made when that split is); a cross split speaks its own slice of its
    text split's sentences, after that split's own."""
    if generator == 1:
        return generate_sentences(split, counts.get(split, 0), seed)
    base = TEXT_OF.get(split, split)
    order = [base, *(c for c in CROSS_SPLITS if TEXT_OF[c] == base and counts.get(c))]
    pool = generate_sentences_v2(base, sum(counts.get(s, 0) for s in order), seed)
    at = sum(counts.get(s, 0) for s in order[: order.index(split)])
    return pool[at: at + counts.get(split, 0)]


def _init_worker() -> None:
    # Many processes each running torch's default thread pool oversubscribe the cores badly.
    import torch

    torch.set_num_threads(1)


def _make_utterance(job: _Job) -> dict:
    # One stream per utterance, so the result does not depend on worker count or order.
    rng = np.random.default_rng([job.seed, _splits(job.generator).index(job.split), job.index])
    pool = job.flite_voices if job.flite_voices and rng.random() < FLITE_SHARE else job.voices
    voice = str(rng.choice(pool))
    rate = float(rng.uniform(0.8, 1.25))
    pitch = int(rng.integers(25, 76))
    x = synthesize(job.text, voice, rate, pitch)
    x, aug = augment(x, rng) if job.generator == 1 else augment_v2(x, rng, train=job.split == "train")
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
    generator: int = DEFAULT_GENERATOR,
) -> dict:
    """Synthesise every split into `out` and write `{split}.jsonl` manifests + corpus.json.

    `counts` overrides the utterances per split of the named size (tests use a few).
    """
    if generator not in GENERATORS:
        raise ValueError(f"corpus generator {generator} is not one of {GENERATORS}")
    require_tools(("espeak-ng", "flite") if generator == 1 else ("espeak-ng", "flite", "espeak", "sox"))
    counts = counts or (SIZES if generator == 1 else SIZES_V2)[size]
    workers = workers or os.cpu_count() or 1
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"seed": seed, "size": size, "generator_version": generator, "splits": {}}
    # A split already synthesised here with the same settings is kept: an interrupted build
    # (in `corpus`'s resumable staging folder) continues where it stopped.
    settings = {"seed": seed, "size": size, "counts": counts, "generator_version": generator}
    done_path = out / ".splits-done.json"
    done = json.loads(done_path.read_text()) if done_path.is_file() else {}
    if done.get("settings") != settings:
        done = {"settings": settings, "splits": {}}
    start = time.time()
    ctx = get_context("fork")
    for split in _splits(generator):
        if not counts.get(split):
            continue
        if split in done["splits"] and (out / f"{split}.jsonl").is_file():
            summary["splits"][split] = done["splits"][split]
            continue
        (out / split).mkdir(exist_ok=True)
        voices = voices_for(split) if generator == 1 else voices_for_v2(split)
        flite = tuple(v for v in voices if v.startswith("flite:"))
        others = tuple(v for v in voices if not v.startswith("flite:"))
        if not others:  # a flite-only split
            others, flite = flite, ()
        texts = _texts(generator, counts, seed, split)
        jobs = [_Job(str(out), split, i, t, others, flite, seed, generator) for i, t in enumerate(texts)]
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
