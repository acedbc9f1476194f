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
    CHAR_LM_FILE, CHAR_LM_ORDER, LEXICON_FILE, LM_FILE, DecoderConfig, cer, char_sentence, decode_all, emissions,
    estimate_arpa, load_waves, wer, write_lexicon,
)
from ..errors import UserError
from ._adapter import adapter_for
from ._io import CARD, CONFIG, folder_vocabulary, load_model


def lm_sentences(path: Path) -> list[str]:
    """A user's LM text: a JSONL manifest's `text` fields, or a plain file of one sentence a line;
    normalised as transcripts are (lower case, no punctuation)."""
    from ..data import normalize_text

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: LM text not found")
    if path.suffix == ".jsonl":
        texts = [u.text for u in load_manifest(path)[0]]
    else:
        try:
            texts = [normalize_text(line) for line in path.read_text().splitlines()]
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text") from None
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise UserError(f"{path}: no sentences for the LM")
    return texts


def build_decoder_assets(model_dir: Path, corpus: Path, lm_text: Path | None = None) -> int:
    """From training sentences only (never dev or test text), or the user's `lm_text`: the word
    4-gram LM and its lexicon, and the character n-gram LM the default lexicon-free decoder uses,
    spelled in the model folder's vocabulary. A generator-1 corpus's lexicon also holds its whole
    domain vocabulary (as the shipped model's always did); a generator-2 corpus's holds only
    training words, so held-out words stay out of it."""
    if lm_text is not None:
        texts, info = lm_sentences(lm_text), {"generator_version": 2}
    else:
        texts = [u.text for u in load_manifest(corpus / "train.jsonl")[0]]
        info = json.loads((corpus / "corpus.json").read_text()) if (corpus / "corpus.json").is_file() else {}
    estimate_arpa(texts, model_dir / LM_FILE, order=4)
    estimate_arpa([char_sentence(t) for t in texts], model_dir / CHAR_LM_FILE, order=CHAR_LM_ORDER)
    words = {w for t in texts for w in t.split()}
    if info.get("generator_version", 1) == 1:
        words |= domain_vocabulary()
    write_lexicon(words, model_dir / LEXICON_FILE, folder_vocabulary(model_dir))
    return len(words)


# The default decoder spells words it never saw (lexicon-free, character LM); the lexicon
# decoder stays available (`--decoder beam_lm`) and is tuned too, for reference.
TUNING = {"beam_char": ([1.0, 1.5, 2.0, 2.5], [0.0, 1.0, 2.0]), "beam_lm": ([0.5, 1.0, 1.5, 2.0], [-1.0, 0.0, 1.0])}


def tune_decoder(model, model_dir: Path, corpus: Path, log: Callable[[str], None], n_dev: int = 300,
                 kind: str = "beam_char") -> DecoderConfig:
    """Grid over LM weight and word score on (a slice of) dev; test is never looked at."""
    dev, _ = load_manifest(corpus / "dev.jsonl")
    dev = dev[:n_dev]
    waves, refs = load_waves(dev)
    lps = emissions(model, waves)
    best, best_wer = DecoderConfig(kind=kind), float("inf")
    weights, scores = TUNING[kind]
    for lm_weight, word_score in itertools.product(weights, scores):
        cfg = DecoderConfig(kind=kind, lm_weight=lm_weight, word_score=word_score,
                            **({"beam_size": 16, "beam_threshold": 15.0} if kind == "beam_char" else {}))
        w = wer(refs, decode_all(lps, model_dir, cfg))
        log(f"  {kind} lm_weight={lm_weight} word_score={word_score}: dev WER {w:.4f}")
        if w < best_wer:
            best, best_wer = cfg, w
    return best


def score_splits(model, model_dir: Path, corpus: Path, cfg: DecoderConfig,
                 lexicon_cfg: DecoderConfig | None = None) -> dict:
    """Every split the corpus has (dev, test and the cross-synthesiser ones) with the default
    decoder, greedy, and the lexicon decoder when it is not the default; and, per split, the
    share of reference words outside the lexicon and each decoder's WER on those words."""
    from ..data import CROSS_SPLITS
    from ..objectives import out_of_lexicon

    lexicon = {line.split("\t", 1)[0] for line in (model_dir / LEXICON_FILE).read_text().splitlines() if line}
    decoders = {"wer": cfg, "greedy_wer": cfg.with_(kind="greedy")}
    if lexicon_cfg is not None and lexicon_cfg.kind != cfg.kind:
        decoders["lexicon_wer"] = lexicon_cfg
    result: dict = {k: {} for k in (*decoders, "cer", "greedy_cer", "utterances", "out_of_lexicon")}
    for split in (s for s in ("dev", "test", *CROSS_SPLITS) if (corpus / f"{s}.jsonl").is_file()):
        utts, _ = load_manifest(corpus / f"{split}.jsonl")
        waves, refs = load_waves(utts)
        lps = emissions(model, waves)
        ool = {}
        for key, dec in decoders.items():
            hyps = decode_all(lps, model_dir, dec)
            result[key][split] = round(wer(refs, hyps), 4)
            if key in ("wer", "greedy_wer"):
                result[key.replace("wer", "cer")][split] = round(cer(refs, hyps), 4)
            o = out_of_lexicon(refs, hyps, lexicon)
            ool |= {"share": round(o["ool_share"], 4), "words": o["ool_words"], key: round(o["ool_wer"], 4)}
        result["out_of_lexicon"][split] = ool
        result["utterances"][split] = len(utts)
    return result


ARCHITECTURE_TEXT = {"conformer_ctc": "Conformer-CTC (torchaudio.models.Conformer), conv subsampling x4, 80 log-mel, "
                                      "characters"}


def finalize(model_dir: Path, corpus: Path, train_summary: dict, command: str,
             log: Callable[[str], None] = print, lm_text: Path | None = None) -> dict:
    model_dir, corpus = Path(model_dir), Path(corpus)
    n_words = build_decoder_assets(model_dir, corpus, lm_text)
    source = str(lm_text) if lm_text is not None else "training sentences"
    log(f"lexicon: {n_words} words; LMs: word 4-gram and character {CHAR_LM_ORDER}-gram on {source}")
    model = load_model(model_dir, unfinished_ok=True)  # the folder this finalize is writing
    adapter = adapter_for(model)
    cfg = tune_decoder(model, model_dir, corpus, log)
    lexicon_cfg = tune_decoder(model, model_dir, corpus, log, kind="beam_lm")
    config = json.loads((model_dir / CONFIG).read_text())
    config["decoder"] = cfg.to_dict()
    (model_dir / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    scores = score_splits(model, model_dir, corpus, cfg, lexicon_cfg)
    corpus_info = json.loads((corpus / "corpus.json").read_text()) if (corpus / "corpus.json").exists() else {}
    card = {
        "architecture": ARCHITECTURE_TEXT.get(adapter.name, f"{adapter.name}: {type(model).__name__}"),
        "model_config": config["model"],
        "parameters": model.num_parameters(),
        "corpus": {"path": str(corpus), "seed": corpus_info.get("seed"), "size": corpus_info.get("size"),
                   "generator_version": corpus_info.get("generator_version", 1), "splits": corpus_info.get("splits")},
        "training_command": command,
        "training_time_seconds": train_summary.get("train_seconds"),
        "training_hardware": train_summary.get("hardware"),
        "training": {k: v for k, v in train_summary.items() if k != "history"},
        "decoder": cfg.to_dict(),
        "lexicon_decoder": lexicon_cfg.to_dict(),
        **scores,
        "scored_on": platform.machine() + " CPU, torch " + torch.__version__,
    }
    (model_dir / CARD).write_text(json.dumps(card, indent=2) + "\n")
    return card
