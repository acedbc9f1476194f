"""Objectives: word error rate (greedy or LM beam-search decoding), and the objective registry
(`OBJECTIVES`: wer, cer, memory, size, latency@PROFILE, wer@SLICE) that the search iterates over."""

from ._decode import DecoderConfig, build_decoder, write_lexicon
from ._evaluate import decode_all, dev_scorer, emissions, evaluate
from ._lm import NgramLM, estimate_arpa
from ._registry import (
    OBJECTIVES, Objective, Probe, describe, digits, lookup, measure, reference_values, register_objective,
    unregister_objective, worst_values,
)
from ._slices import Condition, SliceError, parse_slice, resolve_slice, select, utterance_fields
from ._wer import BOOTSTRAP, cer, out_of_lexicon, utterance_errors, wer, wer_ratio_ci, word_errors

from ._decode import CHAR_LM_FILE, CHAR_LM_ORDER, DECODER_FILES, KINDS as DECODER_KINDS, LEXICON_FILE, LM_FILE, char_sentence
from ._evaluate import load_waves

__all__ = [
    "OBJECTIVES", "Condition", "DecoderConfig", "NgramLM", "Objective", "Probe", "SliceError", "build_decoder", "cer",
    "decode_all", "describe", "dev_scorer", "digits", "emissions", "estimate_arpa", "evaluate", "lookup", "measure",
    "parse_slice", "reference_values", "register_objective", "resolve_slice", "select", "unregister_objective",
    "utterance_fields", "wer", "worst_values", "write_lexicon",
]
__all__ += ['CHAR_LM_FILE', 'CHAR_LM_ORDER', 'DECODER_FILES', 'DECODER_KINDS', 'LEXICON_FILE', 'LM_FILE',
            'char_sentence', 'load_waves', 'out_of_lexicon', 'utterance_errors', 'word_errors', 'BOOTSTRAP', 'wer_ratio_ci']
