"""Acoustic models: the Conformer-CTC base model, its vocabulary, I/O and training."""

from ._conformer_ctc import ConformerCTC, ConvSubsampling, ModelConfig, subsampled_length
from ._io import CARD, CONFIG, WEIGHTS, load_model, read_config, save_model
from ._tokens import TOKENS, decode_ids, encode, greedy_decode

__all__ = [
    "CARD", "CONFIG", "WEIGHTS", "TOKENS", "ConformerCTC", "ConvSubsampling", "ModelConfig",
    "decode_ids", "encode", "greedy_decode", "load_model", "read_config", "save_model",
    "subsampled_length",
]
