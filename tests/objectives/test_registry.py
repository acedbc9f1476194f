"""Contract suite over every registered objective, and the slice selector."""

import math

import pytest

from asrcompress.objectives import (
    OBJECTIVES, SliceError, describe, lookup, parse_slice, resolve_slice, select, utterance_fields,
)

from ..conftest import REPO, needs_synth

EXAMPLE = {"wer": "wer", "cer": "cer", "memory": "memory", "size": "size", "latency@": "latency@rpi4",
           "wer@": "wer@engine=espeak"}


def test_every_registered_objective_is_in_the_contract_suite():
    assert set(OBJECTIVES) == set(EXAMPLE)


@pytest.mark.parametrize("slot", sorted(EXAMPLE))
class TestObjectiveContract:
    def test_name_and_direction(self, slot):
        obj, arg = lookup(EXAMPLE[slot])
        assert obj is OBJECTIVES[slot] and obj.direction == "minimize"
        assert (arg is not None) == bool(obj.family)
        assert (f"{obj.key}@{obj.family}" if obj.family else obj.key) in describe()

    @pytest.mark.parametrize("base", [0.01, 0.3, 0.9, 5.0])
    def test_worst_is_never_inside_the_reference(self, slot, base):
        obj = OBJECTIVES[slot]
        ref = obj.reference(base)
        assert ref > base and obj.worst(base) >= ref  # a stopped trial adds no hypervolume
        assert math.isfinite(obj.worst(base))


def test_unknown_names_are_refused():
    for bad in ("speed", "latency", "wer@", "memory@x", "cer@x"):
        with pytest.raises(KeyError):
            lookup(bad)


@needs_synth
def test_every_objective_measures_deterministically_on_a_fixed_model(tmp_path, tiny_corpus):
    from asrcompress.hardware import load_profiles
    from asrcompress.search import parse_space
    from asrcompress.search._trial import Context, objectives_of

    from ..compression.models import conformer
    from asrcompress.models import save_model

    save_model(conformer(), tmp_path / "tiny")
    names = [EXAMPLE[s] for s in sorted(EXAMPLE)]
    space = parse_space({"version": 1, "groups": [{"pattern": "encoder.*", "bits": [8]}], "objectives": ["wer"] + [
        n for n in names if n != "wer"], "distill": {"steps": 0}}, tmp_path / "s.yaml")
    ctx = Context.load(tmp_path / "tiny", tiny_corpus, space, load_profiles(REPO / "hardware_profiles", ["rpi4"]),
                       tmp_path / "w", 4, 0)
    model = ctx.base
    a = objectives_of(ctx, model, {}, tmp_path / "a")
    b = objectives_of(ctx, model, {}, tmp_path / "b")
    assert set(names) <= set(a) and a == b
    assert a["size"] < a["memory"] and 0 <= a["wer@engine=espeak"]


def test_slices_select_by_manifest_fields():
    from types import SimpleNamespace as U

    utts = [U(fields={"voice": "espeak:en+m1", "augmentation": "noise=pink@8dB"}),
            U(fields={"voice": "flite:kal", "augmentation": "speed=1.1,noise=white@25dB"}),
            U(fields={"voice": "espeak:en-sc+f2", "augmentation": "none"})]
    assert utterance_fields(utts[2].fields)["snr_db"] == math.inf
    assert select(utts, parse_slice("snr_db <= 10")) == utts[:1]
    assert select(utts, parse_slice("engine == espeak and snr_db > 10")) == utts[2:]
    assert select(utts, resolve_slice("engine=flite", {})) == utts[1:2]
    with pytest.raises(SliceError, match="not declared"):
        resolve_slice("noisy", {})
    with pytest.raises(SliceError, match="is not FIELD OP VALUE"):
        parse_slice("snr_db about 10")
