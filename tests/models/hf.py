"""Tiny random-initialised Hugging Face CTC folders, built offline with `save_pretrained` (no hub).

Their vocabulary is the usual wav2vec2 one: <pad> (the blank) <s> </s> <unk>, "|" between
words, then upper-case letters and the apostrophe."""

from __future__ import annotations

import json
from pathlib import Path

import torch

LETTERS = "ETAONISRHDLUMCWFGYPBVK'XJQZ"
VOCAB = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: i + 5 for i, c in enumerate(LETTERS)}}
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
             conv_dim=(16, 16, 16), conv_kernel=(10, 4, 4), conv_stride=(5, 4, 4), conv_bias=True,
             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)


def tiny_hf_folder(out: Path, model_type: str = "wav2vec2", vocab: dict | None = None, seed: int = 0,
                   **overrides) -> Path:
    """Saves a tiny `<Type>ForCTC` with its processor (tokenizer + feature extractor) into `out`."""
    import transformers as tf

    vocab = vocab or VOCAB
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab))
    tok = tf.Wav2Vec2CTCTokenizer(str(out / "vocab.json"), unk_token="<unk>", pad_token="<pad>",
                                  word_delimiter_token="|")
    fe = tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True,
                                     return_attention_mask=overrides.get("feat_extract_norm") == "layer")
    tf.Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok).save_pretrained(str(out))
    config_cls = {"wav2vec2": tf.Wav2Vec2Config, "hubert": tf.HubertConfig, "wavlm": tf.WavLMConfig}[model_type]
    cfg = config_cls(vocab_size=len(vocab), pad_token_id=vocab["<pad>"], **{**SMALL, **overrides})
    torch.manual_seed(seed)
    model = tf.AutoModelForCTC.from_config(cfg).eval()
    model.save_pretrained(str(out))
    return out
