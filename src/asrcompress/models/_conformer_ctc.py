"""Conformer-CTC acoustic model on torchaudio's Conformer.

Shapes (N utterances, T feature frames, F mel bins, d model width, V tokens):
    features (N, T, F) -> subsampling (N, T', d), T' = ((T - 1) // 2 - 1) // 2
    -> Conformer (N, T', d) -> CTC head (N, T', V) log-probabilities.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torchaudio.models import Conformer

from ..data import N_MELS, LogMel
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
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config fields: {sorted(unknown)}")
        return cls(**d)


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
    # Buffers the deployed graph does not hold: it takes log-mel features, and the app derives
    # the filterbank and window from the sample rate and n_mels (see compression/_size.py).
    NOT_DEPLOYED = ("features.",)

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

    def transcribe_logits(self, wave: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, S) 16 kHz samples -> (N, T', V) log-probabilities."""
        feats, frames = self.features(wave, lengths)
        return self(feats, frames)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
