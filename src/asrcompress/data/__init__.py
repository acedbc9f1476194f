"""Speech data: the synthesised benchmark corpus, user manifests and LibriSpeech folders, features."""

from ._batches import collate, make_batches, read_int16
from ._corpus import DEFAULT_GENERATOR, GENERATORS, SIZES, SIZES_V2, build_corpus
from ._domain import domain_vocabulary_v2, generate_sentences_v2
from ._synth import CROSS_SPLITS
from ._features import N_MELS, LogMel, num_frames
from ._manifest import LoadReport, Utterance, corpus_split, load_dataset, load_librispeech, load_manifest, read_audio
from ._text import domain_vocabulary, generate_sentences, normalize_text, sentence_split

__all__ = [
    "CROSS_SPLITS", "DEFAULT_GENERATOR", "GENERATORS", "SIZES_V2", "domain_vocabulary_v2", "generate_sentences_v2",
    "N_MELS", "SIZES", "LoadReport", "LogMel", "collate", "make_batches", "read_int16", "Utterance", "build_corpus", "domain_vocabulary",
    "corpus_split", "generate_sentences", "load_dataset", "load_librispeech", "load_manifest", "normalize_text",
    "num_frames", "read_audio", "sentence_split",
]
