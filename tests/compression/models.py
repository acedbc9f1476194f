"""Small random-initialised acoustic models of the three families the engine must handle."""

import torch
from torch import nn
from torchaudio.models import wav2vec2_model

from asrcompress.models import ConformerCTC, ModelConfig

TINY_CONFORMER = ModelConfig(d_model=32, num_layers=2, num_heads=4, ffn_dim=64, conv_kernel=7, dropout=0.0)


class LSTMCTC(nn.Module):
    """(N, T, 40) -> LSTM x2 -> (N, T, 29)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(40, 48, num_layers=2, batch_first=True)
        self.head = nn.Linear(48, 29)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(x)[0]).log_softmax(-1)


def conformer() -> nn.Module:
    torch.manual_seed(0)
    return ConformerCTC(TINY_CONFORMER).eval()


def wav2vec2() -> nn.Module:
    torch.manual_seed(0)
    return wav2vec2_model(
        extractor_mode="group_norm", extractor_conv_layer_config=[(32, 10, 5), (32, 3, 2)],
        extractor_conv_bias=False, encoder_embed_dim=64, encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=16, encoder_pos_conv_groups=4, encoder_num_layers=2, encoder_num_heads=4,
        encoder_attention_dropout=0.0, encoder_ff_interm_features=128, encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.0, encoder_layer_norm_first=False, encoder_layer_drop=0.0, aux_num_out=29,
    ).eval()


def lstm() -> nn.Module:
    torch.manual_seed(0)
    return LSTMCTC().eval()


def run(model: nn.Module) -> torch.Tensor:
    """One deterministic forward pass, whatever the family."""
    torch.manual_seed(1)
    if isinstance(model, ConformerCTC):
        return model.log_probs(torch.randn(2, 8000), torch.tensor([8000, 6000]))[0]
    if isinstance(model, LSTMCTC):
        return model(torch.randn(2, 30, 40))
    return model(torch.randn(2, 4000))[0]


FAMILIES = {"conformer": conformer, "wav2vec2": wav2vec2, "lstm": lstm}
