"""Every built-in model family passes the adapter contract (tests/models/contract.py); the
registry finds a family by a model's `architecture` or class and refuses others by name."""

import pytest
import torch
from hypothesis import given, settings, strategies as st

from asrcompress.errors import UserError
from asrcompress.models import ARCHITECTURES, FeatureSpec, adapter_for, architecture

from ..compression.models import FAMILIES
from .contract import check_adapter

# Built-in families and a small instance of each (the contract runs on every one).
BUILT_IN = {"conformer_ctc": FAMILIES["conformer"], "torchaudio_wav2vec2": FAMILIES["wav2vec2"]}


def test_every_registered_family_has_a_contract_case():
    assert set(BUILT_IN) <= set(ARCHITECTURES)


@pytest.mark.parametrize("name", list(BUILT_IN))
def test_built_in_family_passes_the_adapter_contract(name):
    model = BUILT_IN[name]()
    assert adapter_for(model).name == name
    check_adapter(model)


def test_a_model_of_no_family_is_refused_by_name():
    with pytest.raises(UserError, match="LSTMCTC: no registered model family"):
        adapter_for(FAMILIES["lstm"]())
    with pytest.raises(UserError, match="architecture 'nope' is not one of"):
        architecture("nope")


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=2_400, max_value=64_000))
def test_conformer_output_length_formula(samples):
    # S samples -> T = 1 + S // 160 frames -> T' = ((T - 1) // 2 - 1) // 2
    model = FAMILIES["conformer"]()
    adapter = adapter_for(model)
    t = 1 + samples // 160
    assert adapter.output_length(model, samples) == ((t - 1) // 2 - 1) // 2
    with torch.no_grad():
        lp, lens = adapter.log_probs(model, torch.zeros(1, samples), torch.tensor([samples]))
    assert lp.shape[1] == lens.item() == adapter.output_length(model, samples)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=400, max_value=40_000))
def test_wav2vec2_output_length_formula(samples):
    # each conv (k, s) of the feature encoder: L -> (L - k) // s + 1; here (10, 5) then (3, 2)
    model = FAMILIES["wav2vec2"]()
    want = ((samples - 10) // 5 + 1 - 3) // 2 + 1
    assert adapter_for(model).output_length(model, samples) == want


def test_feature_spec_of_a_graph_input():
    assert FeatureSpec.of_graph("feats", [1, "T", 80]) == FeatureSpec("log_mel", n_mels=80, input_name="feats")
    assert FeatureSpec.of_graph("input_values", [1, "S"]).kind == "waveform"
    with pytest.raises(UserError, match="neither"):
        FeatureSpec.of_graph("x", [1, 2, 3, 4])
