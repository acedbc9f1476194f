"""Conformer-CTC acoustic model on torchaudio's Conformer.

Shapes (N utterances, T feature frames, F mel bins, d model width, V tokens):
    features (N, T, F) -> subsampling (N, T', d), T' = ((T - 1) // 2 - 1) // 2
    -> Conformer (N, T', d) -> CTC head (N, T', V) log-probabilities.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torchaudio.models import Conformer

from ..data import N_MELS, LogMel
from ._adapter import (
    CHARACTERS, AcousticModel, BlockSpec, FeatureSpec, Vocabulary, config_from_dict, register_architecture,
)
from ._tokens import TOKENS


def subsampled_length(t: torch.Tensor | int) -> torch.Tensor | int:
    """Frames after two 3x3 stride-2 convolutions without padding."""
    return ((t - 1) // 2 - 1) // 2


@dataclass(frozen=True)
class ModelConfig:
    d_model: int = 144
    num_layers: int = 8
    num_heads: int = 4
    ffn_dim: int = 576
    conv_kernel: int = 31
    dropout: float = 0.1
    n_mels: int = N_MELS
    vocab_size: int = len(TOKENS)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return config_from_dict(cls, d, "model config")


class ConvSubsampling(nn.Module):
    """(N, T, F) -> (N, T', d) with T' = ((T-1)//2 - 1)//2 and F' = ((F-1)//2 - 1)//2."""

    def __init__(self, n_mels: int, d_model: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, d_model, kernel_size=3, stride=2)
        self.conv2 = nn.Conv2d(d_model, d_model, kernel_size=3, stride=2)
        self.proj = nn.Linear(d_model * subsampled_length(n_mels), d_model)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.relu(self.conv1(x.unsqueeze(1)))  # (N, 1, T, F) -> (N, d, T/2, F/2)
        x = torch.relu(self.conv2(x))  # -> (N, d, T/4, F/4)
        n, c, t, f = x.shape
        x = self.proj(x.permute(0, 2, 1, 3).reshape(n, t, c * f))  # -> (N, T/4, d)
        return x, subsampled_length(lengths)


class ConformerCTC(nn.Module):
    architecture = "conformer_ctc"

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.features = LogMel(n_mels=cfg.n_mels)
        self.subsampling = ConvSubsampling(cfg.n_mels, cfg.d_model)
        self.encoder = Conformer(
            input_dim=cfg.d_model,
            num_heads=cfg.num_heads,
            ffn_dim=cfg.ffn_dim,
            num_layers=cfg.num_layers,
            depthwise_conv_kernel_size=cfg.conv_kernel,
            dropout=cfg.dropout,
        )
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, T, F) features -> (N, T', V) log-probabilities and (N,) output lengths."""
        x, lengths = self.subsampling(feats, lengths)
        lengths = lengths.clamp(min=1, max=x.shape[1])
        x, lengths = self.encoder(x, lengths)
        return self.head(x).log_softmax(dim=-1), lengths

    def log_probs(self, wave: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, S) 16 kHz samples -> (N, T', V) log-probabilities."""
        feats, frames = self.features(wave, lengths)
        return self(feats, frames)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class Bypassed(nn.Module):
    """A dropped Conformer block: (T, N, d) in, the same out (depth pruning)."""

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        return x


class _Deploy(nn.Module):
    """(1, T, F) log-mel features -> (1, T', V) log-probabilities, T' = ((T-1)//2 - 1)//2."""

    def __init__(self, model: ConformerCTC) -> None:
        super().__init__()
        self.subsampling, self.layers, self.head = model.subsampling, model.encoder.conformer_layers, model.head

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x, _ = self.subsampling(feats, torch.ones(1, dtype=torch.long))  # (1, T, F) -> (1, T', d)
        x = x.transpose(0, 1)  # (T', 1, d): torchaudio's layers are sequence-first
        for layer in self.layers:
            if not isinstance(layer, Bypassed):  # a dropped block leaves no node in the graph
                x = layer(x, None)  # one utterance: no padding mask
        return self.head(x.transpose(0, 1)).log_softmax(dim=-1)


@register_architecture
class ConformerCTCAdapter(AcousticModel):
    """The shipped family: log-mel in, torchaudio Conformer blocks, characters out."""

    name = "conformer_ctc"
    module = ConformerCTC

    def build(self, config: dict) -> ConformerCTC:
        return ConformerCTC(ModelConfig.from_dict(config))

    def config(self, model: ConformerCTC) -> dict:
        return model.cfg.to_dict()

    def features(self, model: ConformerCTC) -> FeatureSpec:
        return FeatureSpec("log_mel", n_mels=model.cfg.n_mels)

    def vocabulary(self, model: ConformerCTC) -> Vocabulary:
        return CHARACTERS

    def log_probs(self, model: ConformerCTC, wave: torch.Tensor, lengths: torch.Tensor):
        return model.log_probs(wave, lengths)

    def output_length(self, model: ConformerCTC, samples: int) -> int:
        return max(1, subsampled_length(self.features(model).steps(samples)))

    def blocks(self, model: ConformerCTC) -> list[BlockSpec]:
        out = [BlockSpec("conv2d", "subsampling", {"first": "conv1", "second": "conv2"}),
               BlockSpec("conv2d", "subsampling", {"first": "conv2", "second": "proj"})]
        for i, _ in enumerate(model.encoder.conformer_layers):
            layer = f"encoder.conformer_layers.{i}"
            out += [BlockSpec("ffn", f"{layer}.{ffn}.sequential", {"first": "1", "second": "4"}) for ffn in ("ffn1", "ffn2")]
            out.append(BlockSpec("attn", layer, {"attn": "self_attn"}))
            out.append(BlockSpec("conv", f"{layer}.conv_module.sequential",
                                 {"first": "0", "depthwise": "2", "norm": "3", "second": "5"}))
        return out

    def depth_blocks(self, model: ConformerCTC) -> list[str]:
        return [f"encoder.conformer_layers.{i}" for i, b in enumerate(model.encoder.conformer_layers)
                if not isinstance(b, Bypassed)]

    def bypass(self, model: ConformerCTC, path: str) -> None:
        model.encoder.conformer_layers[int(path.rsplit(".", 1)[1])] = Bypassed()

    def not_deployed(self, model: ConformerCTC) -> tuple[str, ...]:
        # The graph takes log-mel features: the app derives the filterbank and window from the
        # sample rate and n_mels, so they are not part of what ships.
        return ("features.",)

    def deploy(self, model: ConformerCTC) -> nn.Module:
        return _Deploy(model)
