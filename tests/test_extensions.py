"""The acceptance test of the registries: a toy compression method and a toy objective, each
defined and registered in this module alone, run through a 2-trial search and an export with no
other file changed. (A model family is not yet a registry entry: see docs/architecture.md.)"""

from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

import asrcompress as ac
from asrcompress.compression import (
    Choice, ConfigError, Handler, MethodConfig, Values, check_choice, register, unregister,
)
from asrcompress.objectives import Objective, register_objective, unregister_objective

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
