"""Log-mel features. (N, S) samples -> (N, T, 80), T = 1 + S // 160 (25 ms window, 10 ms hop)."""

from __future__ import annotations

import torch
import torchaudio

N_MELS = 80
HOP = 160


def num_frames(num_samples: int) -> int:
    # center=True pads n_fft//2 on both sides, so every hop start gives a frame.
    return 1 + num_samples // HOP


class LogMel(torch.nn.Module):
    """Log-mel filterbank with per-utterance mean/variance normalisation."""

    def __init__(self, sample_rate: int = 16_000, n_mels: int = N_MELS) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=400, win_length=400, hop_length=HOP, n_mels=n_mels
        )

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # (N, S) -> (N, n_mels, T) -> (N, T, n_mels)
        feats = (self.mel(wave.float()) + 1e-6).log().transpose(1, 2)
        frames = 1 + lengths // HOP
        mask = torch.arange(feats.shape[1], device=feats.device)[None, :] < frames[:, None]
        m = mask[..., None].float()
        count = m.sum(1, keepdim=True).clamp(min=1)
        mean = (feats * m).sum(1, keepdim=True) / count
        var = ((feats - mean) ** 2 * m).sum(1, keepdim=True) / count
        return (feats - mean) / (var + 1e-5).sqrt() * m, frames
