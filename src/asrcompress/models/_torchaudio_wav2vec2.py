"""torchaudio's Wav2Vec2Model with a CTC head (`aux`), as a model family for the engine.

Shapes: wave (N, S) -> conv feature encoder, each layer L -> (L - k) // s + 1
    -> Transformer (N, T', d) -> aux Linear (N, T', V).
It is adapted in memory (Python API, tests of the engine); a model folder stores only the
families whose config round-trips (`savable`).
"""

from __future__ import annotations

import torch
from torch import nn
from torchaudio.models import Wav2Vec2Model

from ._adapter import CHARACTERS, AcousticModel, BlockSpec, FeatureSpec, Vocabulary, register_architecture
from ._tokens import TOKENS


class _Deploy(nn.Module):
    """(1, S) samples -> (1, T', V) log-probabilities."""

    def __init__(self, model: Wav2Vec2Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.model(wave)[0].log_softmax(dim=-1)


@register_architecture
class TorchaudioWav2Vec2Adapter(AcousticModel):
    name = "torchaudio_wav2vec2"
    module = Wav2Vec2Model
    savable = False

    def features(self, model: Wav2Vec2Model) -> FeatureSpec:
        return FeatureSpec("waveform", input_name="wave")

    def vocabulary(self, model: Wav2Vec2Model) -> Vocabulary:
        # The module stores no vocabulary: a head of our size is read as ours, any other as
        # numbered units (greedy decoding only).
        v = model.aux.out_features
        if v == len(TOKENS):
            return CHARACTERS
        return Vocabulary(tuple(f"<{i}>" for i in range(v)), 0, None)

    def log_probs(self, model: Wav2Vec2Model, wave: torch.Tensor, lengths: torch.Tensor):
        logits, out_lens = model(wave, lengths)
        return logits.log_softmax(dim=-1), out_lens

    def output_length(self, model: Wav2Vec2Model, samples: int) -> int:
        n = samples
        for layer in model.feature_extractor.conv_layers:
            n = max(0, (n - layer.kernel_size) // layer.stride + 1)
        return n

    def blocks(self, model: Wav2Vec2Model) -> list[BlockSpec]:
        return [BlockSpec("ffn", f"encoder.transformer.layers.{i}.feed_forward",
                          {"first": "intermediate_dense", "second": "output_dense"})
                for i, _ in enumerate(model.encoder.transformer.layers)]

    def deploy(self, model: Wav2Vec2Model) -> nn.Module:
        return _Deploy(model)
