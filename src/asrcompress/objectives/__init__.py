"""Objectives: word error rate (with greedy or LM beam-search decoding)."""

from ._decode import DecoderConfig, build_decoder, write_lexicon
from ._evaluate import decode_all, dev_scorer, emissions, evaluate
from ._lm import NgramLM, estimate_arpa
from ._wer import cer, wer

__all__ = [
    "DecoderConfig", "NgramLM", "build_decoder", "cer", "decode_all", "dev_scorer", "emissions", "estimate_arpa",
    "evaluate", "wer", "write_lexicon",
]
