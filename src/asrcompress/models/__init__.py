"""Acoustic models: the model-family adapters (`AcousticModel`, `ARCHITECTURES`), the Conformer-CTC
base model, its vocabulary, I/O, training and the model card."""

from ._tokens import BLANK, SEP, TOKENS, decode_ids, encode, greedy_decode
from ._adapter import (
    ARCHITECTURES, CHARACTERS, AcousticModel, BlockSpec, FeatureSpec, Vocabulary, adapter_for, architecture, features_of,
    find_adapter, log_probs, register_architecture, unregister_architecture,
)
from . import _torchaudio_wav2vec2  # noqa: F401  (registers its adapter)
from ._hf_ctc import is_hf_folder
from ._conformer_ctc import ConformerCTC, ConvSubsampling, ModelConfig, subsampled_length
from ._io import (
    CARD, CHAR_LM_FILE, CONFIG, DECODER_FILES, LEXICON_FILE, LM_FILE, TRUST_PICKLE_ENV, WEIGHTS, folder_vocabulary,
    load_model, read_config, save_model,
)
from ._measure import state_dict_bytes, torch_latency_ms

__all__ = [
    "ARCHITECTURES", "CHARACTERS", "AcousticModel", "BlockSpec", "FeatureSpec", "Vocabulary", "adapter_for", "architecture",
    "features_of", "find_adapter", "log_probs", "register_architecture", "unregister_architecture",
    "folder_vocabulary", "is_hf_folder",
    "CHAR_LM_FILE", "DECODER_FILES", "LEXICON_FILE", "LM_FILE",
    "BLANK", "CARD", "CONFIG", "SEP", "TOKENS", "TRUST_PICKLE_ENV", "WEIGHTS", "ConformerCTC", "ConvSubsampling",
    "ModelConfig", "TrainConfig", "decode_ids", "encode", "finalize", "greedy_decode", "load_model", "read_config",
    "save_model", "state_dict_bytes", "subsampled_length", "torch_latency_ms", "train",
]


def __getattr__(name: str):
    # The card and training use objectives, which use this package's vocabulary: loaded on
    # first use, so importing objectives first does not go round in a circle.
    if name == "finalize":
        from ._card import finalize

        return finalize
    if name in ("TrainConfig", "train"):
        from . import _train

        return getattr(_train, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
