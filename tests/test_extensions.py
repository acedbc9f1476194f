"""The acceptance test of the registries: a toy compression method, a toy objective and a toy
model family, each defined and registered in this module alone, run through a 2-trial search
and an export with no other file changed."""

from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from torch import nn

import asrcompress as ac
from asrcompress.compression import (
    Choice, ConfigError, Handler, MethodConfig, Values, check_choice, register, unregister,
)
from asrcompress.models import (
    TOKENS, AcousticModel, BlockSpec, FeatureSpec, Vocabulary, register_architecture, unregister_architecture,
)
from asrcompress.objectives import Objective, register_objective, unregister_objective

from .compression.contract import MethodContract
from .compression.models import conformer
from .conftest import REPO, needs_synth

STEP = 0.0625


@dataclass(frozen=True)
class SnapConfig(MethodConfig):
    """Round every weight to a multiple of `step` (a toy value method)."""

    key: ClassVar[str] = "snap"
    step: float

    def __post_init__(self) -> None:
        if isinstance(self.step, bool) or not isinstance(self.step, (int, float)) or not 0 < self.step <= 1:
            raise ConfigError(f"snap.step={self.step} is outside (0, 1]")


class Snap(Handler):
    def compute(self, weight: torch.Tensor, cfg: SnapConfig) -> Values:
        return Values(torch.round(weight.detach() / cfg.step) * cfg.step, {"step": cfg.step})

    def keep(self, weight: torch.Tensor, state):
        step = state.extra.get("snap", {}).get("step")
        return None if step is None else (lambda w: torch.round(w / step) * step)


@pytest.fixture()
def toys():
    register(SnapConfig, order=55, choices={"snap_step": Choice("step", None)})(Snap)
    register_objective(Objective("kb", "kB", "stored kilobytes", lambda p, _: p.stored_bytes() / 1e3,
                                 worst=lambda b: 10 * b, reference=lambda b: 1.1 * b))
    yield
    unregister("snap")
    unregister_objective("kb")


SPACE = """version: 1
groups:
  - pattern: "encoder.*"
    snap_step: [0.0625]
distill: {steps: 2, lr: 1.0e-3}
objectives: [wer, kb]
constraints: ["kb <= 1.0e9"]
"""


class TestTheToyMethodPassesTheMethodContract(MethodContract):
    key, config = "snap", {"step": STEP}

    @pytest.fixture(autouse=True)
    def _registered(self, toys):
        yield


def test_the_toy_method_s_choices_are_checked_by_its_config(toys):
    assert check_choice("snap_step", 0.5) is None and check_choice("snap_step", None) is None
    assert "outside (0, 1]" in check_choice("snap_step", 2.0)


@pytest.mark.slow
@needs_synth
def test_toy_method_and_objective_run_through_search_and_export(toys, tmp_path, tiny_corpus, monkeypatch):
    from asrcompress.models import load_model, save_model

    monkeypatch.chdir(tmp_path)
    save_model(conformer(), tmp_path / "tiny")
    (tmp_path / "space.yaml").write_text(SPACE)
    study = ac.search(tmp_path / "space.yaml", model=tmp_path / "tiny", data=tiny_corpus, trials=2, study="toy",
                      storage=f"journal:{tmp_path / 'j.log'}", tracking_uri=f"sqlite:///{tmp_path / 'm.db'}",
                      dev_utterances=4, kd_utterances=8, profiles=REPO / "hardware_profiles", baselines=False,
                      sampler="random")
    done = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert len(done) == 2 and study.user_attrs["objectives"] == ["wer", "kb"]
    assert all(any("snap" in r for r in t.user_attrs["policy"]["rules"]) for t in done)
    assert all(t.values[1] > 0 for t in done)
    card = ac.export(study, trial=done[0].number, out=tmp_path / "bundle")
    assert card["trial"] == done[0].number and (tmp_path / "bundle" / "model.onnx").is_file()
    model = load_model(tmp_path / "bundle" / "model")
    w = model.get_submodule("encoder.conformer_layers.0.ffn1.sequential.1").weight.detach()
    assert torch.allclose(w / STEP, torch.round(w / STEP), atol=1e-4)  # distillation kept the grid


# ---- a toy model family: raw waveform in, one strided conv "front end", one FFN block ----------

WIN, HOP = 400, 320


class WaveCTC(nn.Module):
    """(N, S) samples -> (N, W, T') by a strided conv, T' = (S - 400) // 320 + 1 -> FFN -> (N, T', V)."""

    architecture = "toy_wave_ctc"

    def __init__(self, width: int = 24, hidden: int = 48) -> None:
        super().__init__()
        self.width, self.hidden = width, hidden
        self.frontend = nn.Conv1d(1, width, WIN, stride=HOP)
        self.ffn = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, width))
        self.head = nn.Linear(width, len(TOKENS))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = self.frontend(wave[:, None]).relu().transpose(1, 2)  # (N, S) -> (N, 1, S) -> (N, T', W)
        return self.head(x + self.ffn(x)).log_softmax(dim=-1)  # -> (N, T', V)


class WaveCTCAdapter(AcousticModel):
    name = "toy_wave_ctc"
    module = WaveCTC

    def build(self, config: dict) -> WaveCTC:
        return WaveCTC(**config)

    def config(self, model: WaveCTC) -> dict:
        return {"width": model.width, "hidden": model.hidden}

    def features(self, model: WaveCTC) -> FeatureSpec:
        return FeatureSpec("waveform", input_name="input_values")

    def vocabulary(self, model: WaveCTC) -> Vocabulary:
        return Vocabulary(TOKENS, 0, "|")

    def output_length(self, model: WaveCTC, samples: int) -> int:
        return max(1, (samples - WIN) // HOP + 1)

    def log_probs(self, model: WaveCTC, wave: torch.Tensor, lengths: torch.Tensor):
        lp = model(wave)
        return lp, ((lengths - WIN) // HOP + 1).clamp(min=1, max=lp.shape[1])

    def blocks(self, model: WaveCTC) -> list[BlockSpec]:
        return [BlockSpec("ffn", "ffn", {"first": "0", "second": "2"})]

    def deploy(self, model: WaveCTC) -> nn.Module:
        return model


@pytest.fixture()
def toy_family():
    register_architecture(WaveCTCAdapter)
    yield
    unregister_architecture("toy_wave_ctc")


TOY_SPACE = """version: 1
groups:
  - pattern: "ffn.0"
    structured: [0.0, 0.5]
  - pattern: "*"
    bits: [null, 8]
distill: {steps: 2, lr: 1.0e-3}
objectives: [wer, latency@host, memory]
"""


def test_the_toy_family_passes_the_adapter_contract(toy_family):
    from .models.contract import check_adapter

    torch.manual_seed(0)
    check_adapter(WaveCTC().eval(), structured={"ffn.0": 0.5})


@pytest.mark.slow
@needs_synth
def test_toy_family_runs_through_search_and_export(toy_family, tmp_path, tiny_corpus, monkeypatch):
    from asrcompress.models import load_model, save_model

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    save_model(WaveCTC().eval(), tmp_path / "toy")
    (tmp_path / "space.yaml").write_text(TOY_SPACE)
    study = ac.search(tmp_path / "space.yaml", model=tmp_path / "toy", data=tiny_corpus, trials=2, study="toyfam",
                      storage=f"journal:{tmp_path / 'j.log'}", tracking_uri=f"sqlite:///{tmp_path / 'm.db'}",
                      dev_utterances=4, kd_utterances=8, profiles=REPO / "hardware_profiles", baselines=False,
                      sampler="random", seed=3)
    done = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert len(done) == 2, [t.user_attrs.get("reason") for t in study.get_trials()]
    assert all(t.values[1] > 0 and t.values[2] > 0 for t in done)  # latency and memory of the toy graph
    card = ac.export(study, trial=done[0].number, out=tmp_path / "bundle")
    assert (tmp_path / "bundle" / "model.onnx").is_file() and card["measured_on_onnx"]["onnx_bytes"] > 0
    model = load_model(tmp_path / "bundle" / "model")
    assert isinstance(model, WaveCTC)
