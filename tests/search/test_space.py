"""Contract suite over every shipped space, and the space validator's errors."""

from pathlib import Path

import optuna
import pytest
import yaml

from asrcompress.compression import Policy, discover_layers
from asrcompress.errors import UserError
from asrcompress.models import load_model
from asrcompress.search import (
    baseline_params, check_against_model, load_space, parse_space, policy_from_params, suggest,
)

from ..conftest import BASE_MODEL, REPO

SPACES = sorted((REPO / "spaces").glob("*.yaml"))


def _described(model):
    return model, [l.name for l in discover_layers(model)], dict(model.named_modules())


@pytest.fixture(scope="module")
def base_models(tmp_path_factory):
    """The model each shipped space is written for: hf_* spaces a Hugging Face CTC model, the others ours."""
    from ..models.hf import tiny_hf_folder

    hf = tiny_hf_folder(tmp_path_factory.mktemp("hf") / "w2v")
    return {"ours": _described(load_model(BASE_MODEL)), "hf": _described(load_model(hf))}


@pytest.fixture
def base(base_models, path):
    return base_models["hf" if path.stem.startswith("hf_") else "ours"]


def test_required_spaces_are_shipped():
    assert {"quick", "conformer_small"} <= {p.stem for p in SPACES}
    assert any(not any(g.per_layer for g in load_space(p).groups) for p in SPACES)  # a grouped space


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
class TestShippedSpace:
    def test_loads_and_matches_the_base_model(self, path, base):
        space = load_space(path)
        check_against_model(space, base[1])
        for name in space.profiles:
            assert (REPO / "hardware_profiles" / f"{name}.yaml").is_file()

    def test_samples_valid_policies(self, path, base):
        space = load_space(path)
        model, names, modules = base
        study = optuna.create_study(directions=["minimize"] * len(space.objectives),
                                    sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(5):
            trial = study.ask()
            doc = policy_from_params(space, names, suggest(trial, space, names))
            policy = Policy.from_dict(doc)
            policy.resolve(discover_layers(model), model)  # every rule is valid for this model
            assert doc["distill"]["steps"] == space.distill_steps
            study.tell(trial, [1.0] * len(space.objectives))

    def test_baselines_are_expressible(self, path, base):
        space = load_space(path)
        names = base[1]
        baselines = baseline_params(space, names)
        # every shipped space can express the quantization baselines; sparse50 where it offers sparsity
        assert {"uniform_int8", "uniform_int4"} <= set(baselines) <= {"uniform_int8", "uniform_int4", "sparse50"}
        assert ("sparse50" in baselines) == any("sparsity" in g.choices for g in space.groups)
        for name, params in baselines.items():
            doc = policy_from_params(space, names, params)
            Policy.from_dict(doc)
            want = {"uniform_int8": ("quant", "bits", 8), "uniform_int4": ("quant", "bits", 4),
                    "sparse50": ("prune", "sparsity", 0.5)}[name]
            assert any((r.get(want[0]) or {}).get(want[1]) == want[2] for r in doc["rules"]), (name, doc)


def _doc() -> dict:
    return yaml.safe_load((REPO / "spaces" / "quick.yaml").read_text())


def test_constraints_bound_the_objective_alone_or_relative_to_the_base():
    doc = _doc()
    doc["constraints"] = ["wer <= 0.2", "wer <= base + 0.02", "wer<=base*1.05"]
    plain, plus, times = parse_space(doc, Path("ok.yaml")).constraints
    base = {"wer": 0.12}
    assert plain.limit(base) == 0.2
    assert plus.limit(base) == pytest.approx(0.14)
    assert times.limit(base) == pytest.approx(0.126)  # 5% relative, not 5 points
    assert str(times) == "wer <= base * 1.05" and str(plain) == "wer <= 0.2"


@pytest.mark.parametrize("change, needle", [
    (lambda d: d.update(colour="red"), "unknown key 'colour'"),
    (lambda d: d["groups"][0].update(bogus=1), "groups[0]: unknown key 'bogus'"),
    (lambda d: d["groups"][0].update(structured=[0.95]), "'structured' choice 0.95 is out of range"),
    (lambda d: d["groups"][2].update(bits=[9]), "'bits' choice 9"),
    (lambda d: d["groups"][2].update(bits="8"), "'bits' must be a non-empty list"),
    (lambda d: d["groups"][2].update(sparsity=["half"]), "'sparsity' choice 'half'"),
    (lambda d: d["groups"][0].pop("structured"), "groups[0]: chooses nothing"),
    (lambda d: d["groups"][0].update(name="x"), "exactly one of 'pattern' or 'name'"),
    (lambda d: d["distill"].update(alpha=[0.9, 0.1]), "'alpha' must be [low, high]"),
    (lambda d: d["distill"].update(steps=-3), "'steps' must be a whole number"),
    (lambda d: d.update(objectives=["latency@host"]), "must be a list that includes 'wer'"),
    (lambda d: d.update(objectives=["wer", "speed"]), "'speed' is not one of wer, cer, memory, size, latency@PROFILE, wer@SLICE"),
    (lambda d: d.update(constraints=["latency@rpi4 <= 40"]), "which is not an objective"),
    (lambda d: d.update(constraints=["wer < 0.1"]), "is not 'OBJECTIVE <= NUMBER'"),
    (lambda d: d.update(constraints=["wer <= base / 2"]), "or 'OBJECTIVE <= base * NUMBER'"),
    (lambda d: d.update(constraints=["wer <= 0.1.2"]), "'0.1.2' is not a number"),
    (lambda d: d.update(constraints=["wer <= base * 0"]), "a factor of the base must be above 0"),
    (lambda d: d.update(methods=["quant"]), "needs method 'structured'"),
    (lambda d: d.update(version=2), "version: must be 1"),
    (lambda d: (d["groups"][2].update(bits=[3], clusters=[16]), d.pop("methods")),
     "'clusters' choice 16 with 'bits' choice 3: cluster.clusters=16 exceeds the 8 levels"),
    # The space's range is the method's own: 65,536 shared values is what ClusterConfig refuses.
    (lambda d: (d["groups"][2].update(clusters=[65536]), d.pop("methods")),
     "'clusters' choice 65536 is out of range"),
    (lambda d: (d["groups"][2].update(rank_fraction=[True]), d.pop("methods")),
     "'rank_fraction' choice True is out of range"),
])
def test_bad_spaces_name_the_item(change, needle):
    doc = _doc()
    change(doc)
    with pytest.raises(UserError) as e:
        parse_space(doc, Path("bad.yaml"))
    assert needle in str(e.value) and str(e.value).startswith("bad.yaml")


def test_a_pattern_that_matches_no_layer(base_models):
    doc = _doc()
    doc["groups"][0]["pattern"] = "decoder.*"
    with pytest.raises(UserError, match=r"groups\[0\]: pattern 'decoder.\*' matches no layer"):
        check_against_model(parse_space(doc, Path("s.yaml")), base_models["ours"][1])


def test_yaml_tags_are_refused(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("version: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(UserError, match="evil.yaml: not valid YAML"):
        load_space(p)


@pytest.mark.parametrize("name, cls", [("tpe", optuna.samplers.TPESampler), ("nsga2", optuna.samplers.NSGAIISampler),
                                       ("gp", optuna.samplers.GPSampler)])
def test_samplers_are_named_explicitly(name, cls):
    from asrcompress.search._study import make_sampler

    assert isinstance(make_sampler(name, 0), cls)


def test_unknown_sampler_and_sqlite_for_workers_are_refused():
    from asrcompress.search._study import make_sampler, open_storage

    with pytest.raises(UserError, match="--sampler 'cmaes'"):
        make_sampler("cmaes", 0)
    with pytest.raises(UserError, match="SQLite cannot serve several workers"):
        open_storage("sqlite:///x.db", workers=2)
