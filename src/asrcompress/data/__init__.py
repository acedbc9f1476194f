"""Speech data: the synthesised benchmark corpus, user manifests and LibriSpeech folders, features."""

from ._batches import collate, make_batches, read_int16
from ._corpus import SIZES, build_corpus
from ._features import N_MELS, LogMel, num_frames
from ._manifest import LoadReport, Utterance, load_dataset, load_librispeech, load_manifest, read_audio
from ._text import domain_vocabulary, generate_sentences, normalize_text, sentence_split

__all__ = [
    "N_MELS", "SIZES", "LoadReport", "LogMel", "collate", "make_batches", "read_int16", "Utterance", "build_corpus", "domain_vocabulary",
    "generate_sentences", "load_dataset", "load_librispeech", "load_manifest", "normalize_text",
    "num_frames", "read_audio", "sentence_split",
]
