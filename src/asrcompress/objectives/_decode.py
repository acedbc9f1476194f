"""CTC decoders: greedy (fast path); lexicon-free beam search with a character n-gram LM
(`beam_char`: it spells words it never saw); lexicon-constrained beam search with a word n-gram
LM (`beam_lm`: only lexicon words).

The beam searches are flashlight-text's LexiconFreeDecoder and LexiconDecoder (through
torchaudio's pure-Python wrapper); the LMs are our ARPA reader plugged in as custom
CTCDecoderLMs, because the flashlight-text wheel ships without KenLM.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch

from ..errors import UserError
from ..models import (
    CHAR_LM_FILE, CHARACTERS, CONFIG, DECODER_FILES, LEXICON_FILE, LM_FILE, SEP, Vocabulary, folder_vocabulary,
    is_hf_folder,
)
from ._lm import NgramLM

CHAR_LM_ORDER = 7  # characters of context + 1: longer than most words, so it spells like a word LM
UNK = "<unk>"
KINDS = ("greedy", "beam_char", "beam_lm")


@dataclass(frozen=True)
class DecoderConfig:
    kind: str = "beam_lm"  # one of KINDS
    beam_size: int = 32
    beam_threshold: float = 25.0
    lm_weight: float = 1.0
    word_score: float = 0.0  # beam_lm: per word; beam_char: per word separator

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"decoder kind {self.kind!r} is not one of {', '.join(repr(k) for k in KINDS)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DecoderConfig":
        known = {f.name for f in fields(cls)}
        bad = set(d) - known
        if bad:
            raise UserError(f"decoder config: unknown fields {sorted(bad)}")
        return cls(**d)

    def with_(self, **kw: object) -> "DecoderConfig":
        return replace(self, **kw)


def write_lexicon(words: set[str], path: Path, vocab: Vocabulary | None = None) -> None:
    """One line per word: `word w o r d |`, spelled in `vocab`'s tokens (ours by default; the
    trailing word delimiter ends the word). Words it cannot spell are left out."""
    vocab = vocab or CHARACTERS
    lines = []
    for w in sorted(words):
        spelled = vocab.spell(w) if w else None
        if spelled:
            lines.append(f"{w}\t{' '.join(spelled)} {vocab.delimiter}")
    Path(path).write_text("\n".join(lines) + "\n")


def _make_lm(ngram: NgramLM, word_list: list[str]):
    from torchaudio.models.decoder import CTCDecoderLM, CTCDecoderLMState

    class _FlashlightNgram(CTCDecoderLM):
        def __init__(self) -> None:
            CTCDecoderLM.__init__(self)
            self.words = word_list
            self.states: dict = {}

        def start(self, start_with_nothing: bool):
            self.states = {}
            state = CTCDecoderLMState()
            self.states[state] = ("<s>",)
            return state

        def score(self, state, usr_token_idx: int):
            child = state.child(usr_token_idx)
            ctx = self.states[state]
            word = self.words[usr_token_idx]
            if child not in self.states:
                self.states[child] = (*ctx, word)[-(ngram.order - 1):]
            return child, ngram.score(ctx, word)

        def finish(self, state):
            return state, ngram.score(self.states[state], "</s>")

    return _FlashlightNgram()


def char_sentence(text: str) -> str:
    """'hi you' -> 'h i | y o u': the character LM's words are the model's tokens."""
    return " ".join(SEP if c == " " else c for c in text)


def _make_char_lm(ngram: NgramLM, tokens: list[str]):
    from torchaudio.models.decoder import CTCDecoderLM, CTCDecoderLMState

    sep = tokens.index(SEP)

    class _CharNgram(CTCDecoderLM):
        """Scores each emitted token; a separator at the start or after another separator is
        silence, not a character, and costs nothing."""

        def __init__(self) -> None:
            CTCDecoderLM.__init__(self)
            self.states: dict = {}

        def start(self, start_with_nothing: bool):
            self.states = {}
            state = CTCDecoderLMState()
            self.states[state] = ("<s>",)
            return state

        def score(self, state, usr_token_idx: int):
            ctx = self.states[state]
            if usr_token_idx == sep and ctx[-1] in ("<s>", SEP):
                return state, 0.0
            child = state.child(usr_token_idx)
            token = tokens[usr_token_idx]
            if child not in self.states:
                self.states[child] = (*ctx, token)[-(ngram.order - 1):]
            return child, ngram.score(ctx, token)

        def finish(self, state):
            ctx = self.states[state]
            if ctx[-1] == SEP:
                ctx = ctx[:-1] or ("<s>",)
            return state, ngram.score(ctx, "</s>")

    return _CharNgram()


def _beam_char(model_dir: Path, cfg: DecoderConfig, vocab: Vocabulary) -> Callable[[torch.Tensor], str]:
    from torchaudio.models.decoder import ctc_decoder

    # The character LM's alphabet is our lower-case characters and SEP: the model's tokens are
    # scored as those (an upper-case 'A' as 'a', its word delimiter as SEP).
    alphabet = [SEP if t == vocab.delimiter else t.lower() if len(t) == 1 else t for t in vocab.tokens]
    lm = _make_char_lm(NgramLM(Path(model_dir) / CHAR_LM_FILE), alphabet)
    dec = ctc_decoder(lexicon=None, tokens=list(vocab.tokens), lm=lm, beam_size=cfg.beam_size,
                      beam_threshold=cfg.beam_threshold, lm_weight=cfg.lm_weight, sil_score=cfg.word_score,
                      blank_token=vocab.tokens[vocab.blank], sil_token=vocab.delimiter)

    def beam(lp: torch.Tensor) -> str:
        hyps = dec(lp.float().contiguous().cpu()[None])
        if not hyps or not hyps[0]:
            return ""
        return vocab.text(hyps[0][0].tokens.tolist())

    beam.decoder, beam.lm = dec, lm  # keep the LM alive as long as the decoder (pybind lifetime)
    return beam


def _vocab_file(model_dir: Path) -> Path:
    """Where a folder's vocabulary is written: a Hugging Face tokenizer's file, or our config.json."""
    model_dir = Path(model_dir)
    if is_hf_folder(model_dir):
        return next((model_dir / n for n in ("vocab.json", "tokenizer.json") if (model_dir / n).is_file()),
                    model_dir / "vocab.json")
    return model_dir / CONFIG


def build_decoder(model_dir: Path, cfg: DecoderConfig) -> Callable[[torch.Tensor], str]:
    """A function from one utterance's (T', V) log-probabilities to its transcript, spelled in
    the folder's own vocabulary (`models.folder_vocabulary`)."""
    vocab = folder_vocabulary(model_dir)
    if cfg.kind == "greedy":
        def greedy(lp: torch.Tensor) -> str:
            return vocab.greedy(lp[None], torch.tensor([lp.shape[0]]))[0]
        return greedy
    # The beam searches spell words in characters, with the folder's lexicon and LMs.
    if not vocab.characters:
        example = next(t for i, t in enumerate(vocab.tokens) if i != vocab.blank and len(t) > 1 and t[0] != "<")
        raise UserError(f"{_vocab_file(model_dir)}: the vocabulary is not characters (e.g. token {example!r}); "
                        f"{cfg.kind} decoding needs a character vocabulary, use --decoder greedy")
    if vocab.delimiter is None:
        raise UserError(f"{_vocab_file(model_dir)}: the vocabulary has no word delimiter; {cfg.kind} decoding "
                        "needs one, use --decoder greedy")
    missing = [f for f in ((CHAR_LM_FILE,) if cfg.kind == "beam_char" else (LEXICON_FILE, LM_FILE))
               if not (Path(model_dir) / f).is_file()]
    if missing:
        raise UserError(f"{Path(model_dir) / missing[0]}: the {cfg.kind} decoder needs it in the model folder "
                        "(asrcompress finalize --model M --corpus C [--lm-text TEXT] --out DIR builds it)")
    if cfg.kind == "beam_char":
        return _beam_char(model_dir, cfg, vocab)

    from torchaudio.models.decoder import ctc_decoder

    lexicon = Path(model_dir) / LEXICON_FILE
    ngram = NgramLM(Path(model_dir) / LM_FILE)
    lex_words = [line.split("\t", 1)[0] for line in lexicon.read_text().splitlines() if line.strip()]
    word_list = [UNK, *lex_words]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(word_list) + "\n")
        lm_dict = f.name
    lm = _make_lm(ngram, word_list)
    dec = ctc_decoder(
        lexicon=str(lexicon),
        tokens=list(vocab.tokens),
        lm=lm,
        lm_dict=lm_dict,
        beam_size=cfg.beam_size,
        beam_threshold=cfg.beam_threshold,
        lm_weight=cfg.lm_weight,
        word_score=cfg.word_score,
        sil_score=0.0,
        blank_token=vocab.tokens[vocab.blank],
        sil_token=vocab.delimiter,
        unk_word=UNK,
    )
    Path(lm_dict).unlink()

    def beam(lp: torch.Tensor) -> str:
        hyps = dec(lp.float().contiguous().cpu()[None])
        return " ".join(hyps[0][0].words) if hyps and hyps[0] else ""

    beam.decoder = dec  # keep the LM alive as long as the decoder (pybind lifetime)
    beam.lm = lm
    return beam
