"""Hugging Face CTC models (Wav2Vec2ForCTC, HubertForCTC, WavLMForCTC) from a local folder.

A folder saved by `save_pretrained` (config.json with a `model_type`, model.safetensors,
vocab.json, tokenizer_config.json, the processor's config) is read with `transformers`, never
from a hub (`local_files_only`). Once compressed it is saved as one of our model folders
(architecture `hf_ctc`), which holds the Hugging Face config, the vocabulary and the input
normalisation, so it loads again without the tokenizer files.

Structured blocks: the feature encoder's conv channels, each layer's FFN neurons, and (Wav2Vec2,
HuBERT) its attention heads, whose q/k/v/out projections are separate Linears.

Shapes: input_values (N, S), zero-mean unit-variance per utterance when the feature extractor
normalises -> feature encoder, each conv (k, s): L -> (L - k) // s + 1 -> (N, T', C)
-> feature projection (N, T', d) -> Transformer layers (N, T', d) -> lm_head (N, T', V).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from ._adapter import AcousticModel, BlockSpec, FeatureSpec, Vocabulary, register_architecture

# model_type -> the sub-module its CTC class keeps the encoder under (`base_model_prefix`).
MODEL_TYPES = {"wav2vec2": "wav2vec2", "hubert": "hubert", "wavlm": "wavlm"}
# WavLM's attention runs torch's fused multi-head attention with gated relative positions:
# its heads cannot be sliced out, and its first layer computes the position bias the others use.
HEAD_PRUNABLE = ("wav2vec2", "hubert")
NAME = "hf_ctc"


def transformers_module():
    try:
        import transformers
    except ImportError:
        raise UserError("Hugging Face models need the `hf` extra: pip install 'asrcompress[hf]'") from None
    transformers.utils.logging.disable_progress_bar()  # one line per command, not a bar per load
    return transformers


def is_hf_folder(model_dir: Path) -> bool:
    """A folder whose config.json is a Hugging Face config (a `model_type`, none of our fields)."""
    path = Path(model_dir) / "config.json"
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(cfg, dict) and "model_type" in cfg and "format_version" not in cfg


class Bypassed(nn.Module):
    """A dropped encoder layer: hidden states pass through (WavLM's layers also pass the position bias)."""

    def __init__(self, with_position_bias: bool = False) -> None:
        super().__init__()
        self.with_position_bias = with_position_bias

    def forward(self, hidden_states: torch.Tensor, *args, position_bias=None, **kwargs):
        return (hidden_states, position_bias) if self.with_position_bias else hidden_states


class _Deploy(nn.Module):
    """(1, S) normalised samples -> (1, T', V) log-probabilities."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        return self.model(input_values).logits.log_softmax(dim=-1)


def _tokenizer_file(model_dir: Path) -> Path:
    for name in ("vocab.json", "tokenizer.json", "tokenizer_config.json"):
        if (model_dir / name).is_file():
            return model_dir / name
    return model_dir / "vocab.json"


def read_vocabulary(model_dir: Path) -> Vocabulary:
    """The tokenizer's CTC units in id order, its pad token as the blank, its word delimiter."""
    model_dir = Path(model_dir)
    if not (model_dir / "vocab.json").is_file() and not (model_dir / "tokenizer.json").is_file():
        raise UserError(f"{model_dir / 'vocab.json'}: not found; a Hugging Face CTC folder needs its "
                        "tokenizer's vocabulary (save the processor with save_pretrained)")
    tf = transformers_module()
    try:
        tok = tf.AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    except Exception as e:  # noqa: BLE001  (any tokenizer failure is the folder's)
        raise UserError(f"{_tokenizer_file(model_dir)}: the tokenizer does not load ({str(e).splitlines()[0][:160]})") from None
    vocab = tok.get_vocab()
    ids = sorted(vocab.values())
    if ids != list(range(len(ids))):
        raise UserError(f"{_tokenizer_file(model_dir)}: token ids are not 0..{len(ids) - 1}")
    tokens = [""] * len(ids)
    for t, i in vocab.items():
        tokens[i] = t
    if tok.pad_token is None or tok.pad_token not in vocab:
        raise UserError(f"{_tokenizer_file(model_dir)}: no pad token, which CTC uses as its blank")
    delimiter = getattr(tok, "word_delimiter_token", None)
    found = Vocabulary(tuple(tokens), vocab[tok.pad_token], delimiter if delimiter in vocab else None)
    outputs = json.loads((model_dir / "config.json").read_text()).get("vocab_size", len(tokens))
    return _fit_head(found, int(outputs), _tokenizer_file(model_dir))


def read_features(model_dir: Path) -> FeatureSpec:
    """The processor's input normalisation and sample rate."""
    tf = transformers_module()
    # transformers 4 writes preprocessor_config.json; 5 folds it into processor_config.json
    where = next((Path(model_dir) / n for n in ("preprocessor_config.json", "processor_config.json")
                  if (Path(model_dir) / n).is_file()), Path(model_dir) / "preprocessor_config.json")
    try:
        fe = tf.AutoFeatureExtractor.from_pretrained(str(model_dir), local_files_only=True)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{where}: the feature extractor does not load ({str(e).splitlines()[0][:160]})") from None
    rate = int(getattr(fe, "sampling_rate", 16_000))
    if rate != 16_000:
        raise UserError(f"{where}: sampling_rate {rate}; asrcompress reads 16 kHz audio")
    return FeatureSpec("waveform", normalize=bool(getattr(fe, "do_normalize", True)), input_name="input_values")


def load_hf_folder(model_dir: Path, trust_pickle: bool) -> nn.Module:
    """A Hugging Face CTC model folder -> the model, with its vocabulary and input spec attached."""
    from ._io import PICKLE_NAMES, trusts_pickle

    model_dir = Path(model_dir)
    cfg_path = model_dir / "config.json"
    model_type = json.loads(cfg_path.read_text()).get("model_type")
    if model_type not in MODEL_TYPES:
        raise UserError(f"{cfg_path}: model_type {model_type!r} is not a supported CTC model "
                        f"(supported: {', '.join(MODEL_TYPES)})")
    vocab = read_vocabulary(model_dir)
    spec = read_features(model_dir)
    safetensors = (model_dir / "model.safetensors").is_file()
    if not safetensors:
        pickled = next((model_dir / n for n in PICKLE_NAMES if (model_dir / n).is_file()), None)
        if pickled is None:
            raise UserError(f"{model_dir / 'model.safetensors'}: weights not found")
        if not (trust_pickle or trusts_pickle()):
            raise UserError(f"{pickled}: a pickle checkpoint, refused (loading pickle can run code); save the model "
                            "with safetensors, or pass --trust-pickle if you trust where it came from")
    tf = transformers_module()
    try:
        # transformers reads a pickle checkpoint with torch.load(weights_only=True)
        model = tf.AutoModelForCTC.from_pretrained(str(model_dir), local_files_only=True, use_safetensors=safetensors)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{cfg_path}: the model does not load ({str(e).splitlines()[0][:200]})") from None
    return attach(model.eval(), vocab, spec)


def _fit_head(vocab: Vocabulary, outputs: int, where: Path) -> Vocabulary:
    """The vocabulary as the CTC head sees it: a tokenizer may add special tokens past the head
    (<s>, </s> the head never emits), and a head may be padded past the tokenizer (never-used outputs)."""
    extra = vocab.tokens[outputs:]
    if any(not (t.startswith("<") and t.endswith(">")) for t in extra) or vocab.blank >= outputs:
        raise UserError(f"{where}: {len(vocab.tokens)} tokens, but the model's head has {outputs} outputs")
    tokens = vocab.tokens[:outputs] + tuple(f"<unused{i}>" for i in range(len(vocab.tokens), outputs))
    return Vocabulary(tokens, vocab.blank, vocab.delimiter)


def attach(model: nn.Module, vocab: Vocabulary, spec: FeatureSpec) -> nn.Module:
    """Keep what the tokenizer and processor said on the model itself (copies keep it too).
    LayerDrop and SpecAugment masking are turned off: recovery matches the teacher frame by frame."""
    model.asr_vocabulary, model.asr_features, model.architecture = vocab, spec, NAME
    model.config.layerdrop, model.config.apply_spec_augment = 0.0, False
    return model


def _base(model: nn.Module) -> nn.Module:
    return getattr(model, model.base_model_prefix)


@register_architecture
class HFCTCAdapter(AcousticModel):
    name = NAME
    module = nn.Module  # matched by `matches`: transformers is optional and imported on first use

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        return type(model).__module__.startswith("transformers.") and hasattr(model, "asr_vocabulary")

    # -- our model folder
    def build(self, config: dict) -> nn.Module:
        tf = transformers_module()
        hf = dict(config["hf_config"])
        model_type = hf.get("model_type")
        if model_type not in MODEL_TYPES:
            raise ValueError(f"model_type {model_type!r} is not one of {', '.join(MODEL_TYPES)}")
        hf_config = tf.AutoConfig.for_model(**hf)
        model = tf.AutoModelForCTC.from_config(hf_config)
        return attach(model.eval(), Vocabulary.from_dict(config["vocabulary"]), FeatureSpec(**config["features"]))

    def config(self, model: nn.Module) -> dict:
        return {"hf_config": model.config.to_diff_dict(), "features": model.asr_features.to_dict(),
                "vocabulary": model.asr_vocabulary.to_dict()}

    # -- what it eats and gives
    def features(self, model: nn.Module) -> FeatureSpec:
        return model.asr_features

    def vocabulary(self, model: nn.Module) -> Vocabulary:
        return model.asr_vocabulary

    def log_probs(self, model: nn.Module, wave: torch.Tensor, lengths: torch.Tensor):
        # (N, S) padded samples -> the processor's per-utterance normalisation over the real
        # samples (padding stays 0) -> (N, T', V); the attention mask only where the model was
        # trained with one (layer-norm feature encoders), as the processor decides.
        valid = torch.arange(wave.shape[1])[None, :] < lengths[:, None]
        x = wave
        if model.asr_features.normalize:
            n = lengths.clamp(min=1)[:, None].to(wave.dtype)
            mean = (wave * valid).sum(1, keepdim=True) / n
            var = (((wave - mean) * valid) ** 2).sum(1, keepdim=True) / n
            x = torch.where(valid, (wave - mean) / torch.sqrt(var + 1e-7), torch.zeros_like(wave))
        mask = valid.long() if model.config.feat_extract_norm == "layer" else None
        logits = model(x, attention_mask=mask).logits
        return logits.log_softmax(dim=-1), torch.tensor([self.output_length(model, int(n)) for n in lengths])

    def output_length(self, model: nn.Module, samples: int) -> int:
        n = samples
        for k, s in zip(model.config.conv_kernel, model.config.conv_stride):
            n = max(0, (n - k) // s + 1)
        return n

    # -- structure
    def blocks(self, model: nn.Module) -> list[BlockSpec]:
        out = self._feature_encoder_blocks(model)
        prefix = f"{model.base_model_prefix}.encoder.layers"
        heads = model.config.model_type in HEAD_PRUNABLE
        for i, layer in enumerate(_base(model).encoder.layers):
            if isinstance(layer, Bypassed):
                continue
            out.append(BlockSpec("ffn", f"{prefix}.{i}.feed_forward",
                                 {"first": "intermediate_dense", "second": "output_dense"}))
            if heads:
                out.append(BlockSpec("heads", f"{prefix}.{i}.attention",
                                     {"first": "q_proj", "k": "k_proj", "v": "v_proj", "second": "out_proj"}))
        return out

    @staticmethod
    def _feature_encoder_blocks(model: nn.Module) -> list[BlockSpec]:
        """Each conv layer's output channels: its conv (and norm) produce them; the next conv, or
        after the last the feature projection's LayerNorm and Linear, read them."""
        convs = _base(model).feature_extractor.conv_layers
        out = []
        for i, layer in enumerate(convs):
            roles = {"first": f"feature_extractor.conv_layers.{i}.conv"}
            if hasattr(layer, "layer_norm"):
                roles["norm"] = f"feature_extractor.conv_layers.{i}.layer_norm"
            if i + 1 < len(convs):
                roles["second"] = f"feature_extractor.conv_layers.{i + 1}.conv"
            else:
                roles |= {"second": "feature_projection.projection", "second_norm": "feature_projection.layer_norm"}
            out.append(BlockSpec("conv1d", model.base_model_prefix, roles))
        return out

    def depth_blocks(self, model: nn.Module) -> list[str]:
        prefix = f"{model.base_model_prefix}.encoder.layers"
        first = 1 if model.config.model_type == "wavlm" else 0  # WavLM's layer 0 makes the position bias
        return [f"{prefix}.{i}" for i, layer in enumerate(_base(model).encoder.layers)
                if i >= first and not isinstance(layer, Bypassed)]

    def bypass(self, model: nn.Module, path: str) -> None:
        layers = _base(model).encoder.layers
        layers[int(path.rsplit(".", 1)[1])] = Bypassed(with_position_bias=model.config.model_type == "wavlm")

    def deploy(self, model: nn.Module) -> nn.Module:
        return _Deploy(model)
