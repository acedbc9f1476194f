"""After training: decoder assets from training text, decoder tuned on dev, and the model card."""

from __future__ import annotations

import itertools
import json
import platform
from collections.abc import Callable
from pathlib import Path

import torch

from ..data import domain_vocabulary, load_manifest
from ..objectives import (
    LEXICON_FILE, LM_FILE, DecoderConfig, cer, decode_all, emissions, estimate_arpa, load_waves, wer, write_lexicon,
)
from ._io import CARD, CONFIG, load_model


def build_decoder_assets(model_dir: Path, corpus: Path) -> int:
    """Lexicon = domain vocabulary + training words; LM = 4-gram on training sentences only."""
    train, _ = load_manifest(corpus / "train.jsonl")
    texts = [u.text for u in train]
    estimate_arpa(texts, model_dir / LM_FILE, order=4)
    words = domain_vocabulary() | {w for t in texts for w in t.split()}
    write_lexicon(words, model_dir / LEXICON_FILE)
    return len(words)


def tune_decoder(model, model_dir: Path, corpus: Path, log: Callable[[str], None],
                 n_dev: int = 300) -> DecoderConfig:
    """Grid over LM weight and word score on (a slice of) dev; test is never looked at."""
    dev, _ = load_manifest(corpus / "dev.jsonl")
    dev = dev[:n_dev]
    waves, refs = load_waves(dev)
    lps = emissions(model, waves)
    best, best_wer = DecoderConfig(), float("inf")
    for lm_weight, word_score in itertools.product([0.5, 1.0, 1.5, 2.0], [-1.0, 0.0, 1.0]):
        cfg = DecoderConfig(lm_weight=lm_weight, word_score=word_score)
        w = wer(refs, decode_all(lps, model_dir, cfg))
        log(f"  lm_weight={lm_weight} word_score={word_score}: dev WER {w:.4f}")
        if w < best_wer:
            best, best_wer = cfg, w
    return best


def score_splits(model, model_dir: Path, corpus: Path, cfg: DecoderConfig) -> dict:
    result: dict = {"wer": {}, "cer": {}, "greedy_wer": {}, "greedy_cer": {}, "utterances": {}}
    for split in ("dev", "test"):
        utts, _ = load_manifest(corpus / f"{split}.jsonl")
        waves, refs = load_waves(utts)
        lps = emissions(model, waves)
        hyps = decode_all(lps, model_dir, cfg)
        greedy = decode_all(lps, model_dir, cfg.with_(kind="greedy"))
        result["wer"][split] = round(wer(refs, hyps), 4)
        result["cer"][split] = round(cer(refs, hyps), 4)
        result["greedy_wer"][split] = round(wer(refs, greedy), 4)
        result["greedy_cer"][split] = round(cer(refs, greedy), 4)
        result["utterances"][split] = len(utts)
    return result


def finalize(model_dir: Path, corpus: Path, train_summary: dict, command: str,
             log: Callable[[str], None] = print) -> dict:
    model_dir, corpus = Path(model_dir), Path(corpus)
    n_words = build_decoder_assets(model_dir, corpus)
    log(f"lexicon: {n_words} words; LM: 4-gram on training sentences")
    model = load_model(model_dir, unfinished_ok=True)  # the folder this finalize is writing
    cfg = tune_decoder(model, model_dir, corpus, log)
    config = json.loads((model_dir / CONFIG).read_text())
    config["decoder"] = cfg.to_dict()
    (model_dir / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    scores = score_splits(model, model_dir, corpus, cfg)
    corpus_info = json.loads((corpus / "corpus.json").read_text()) if (corpus / "corpus.json").exists() else {}
    card = {
        "architecture": "Conformer-CTC (torchaudio.models.Conformer), conv subsampling x4, 80 log-mel, characters",
        "model_config": config["model"],
        "parameters": model.num_parameters(),
        "corpus": {"path": str(corpus), "seed": corpus_info.get("seed"), "size": corpus_info.get("size"),
                   "splits": corpus_info.get("splits")},
        "training_command": command,
        "training_time_seconds": train_summary.get("train_seconds"),
        "training_hardware": train_summary.get("hardware"),
        "training": {k: v for k, v in train_summary.items() if k != "history"},
        "decoder": cfg.to_dict(),
        **scores,
        "scored_on": platform.machine() + " CPU, torch " + torch.__version__,
    }
    (model_dir / CARD).write_text(json.dumps(card, indent=2) + "\n")
    return card
