import json

import pytest
from hypothesis import given, settings, strategies as st

from asrcompress.compression import (
    LowRankConfig, MagnitudePruneConfig, Policy, PolicyError, QuantConfig, discover_layers,
)

from .models import FAMILIES

FFN1 = "encoder.conformer_layers.0.ffn1.sequential.1"


def resolve(rules, family="conformer"):
    model = FAMILIES[family]()
    policy = Policy.from_dict({"version": 1, "rules": rules})
    return policy.resolve(discover_layers(model), model).plans


def test_priority_global_type_pattern_name():
    plans = resolve([
        {"name": FFN1, "quant": {"bits": 2}},           # highest priority, though listed first
        {"pattern": "encoder.*.ffn1.*", "quant": {"bits": 4}},
        {"type": "Linear", "quant": {"bits": 6}},
        {"global": True, "quant": {"bits": 8}, "prune": {"sparsity": 0.1}},
    ])
    assert plans[FFN1]["quant"] == QuantConfig(bits=2)
    assert plans["encoder.conformer_layers.1.ffn1.sequential.1"]["quant"] == QuantConfig(bits=4)
    assert plans["head"]["quant"] == QuantConfig(bits=6)
    assert plans["subsampling.conv1"]["quant"] == QuantConfig(bits=8)
    assert plans[FFN1]["prune"] == MagnitudePruneConfig(0.1)  # merged from the global rule


def test_later_rule_wins_among_equals_and_null_removes():
    plans = resolve([
        {"type": "Linear", "quant": {"bits": 4}},
        {"type": "Linear", "quant": {"bits": 6}},
        {"name": "head", "quant": None, "prune": {"sparsity": 0.2}},
    ])
    assert plans[FFN1]["quant"] == QuantConfig(bits=6)
    assert "quant" not in plans["head"]


def test_regex_patterns():
    plans = resolve([{"pattern": r"re:encoder\.conformer_layers\.[01]\.ffn2\..*", "lowrank": {"rank_fraction": 0.5}}])
    assert len(plans) == 4 and all("ffn2" in n for n in plans)


def test_methods_that_do_not_apply_are_skipped_for_broad_rules_and_refused_for_exact_names():
    model = FAMILIES["conformer"]()
    layers = discover_layers(model)
    res = Policy.from_dict({"version": 1, "rules": [{"global": True, "lowrank": {"rank_fraction": 0.5}}]}).resolve(
        layers, model)
    assert any("depthwise" in s or "Conv1d" in s for s in res.skipped)
    assert "encoder.conformer_layers.0.conv_module.sequential.2" not in res.plans
    exact = Policy.from_dict({"version": 1, "rules": [
        {"name": "encoder.conformer_layers.0.self_attn.out_proj", "lowrank": {"rank": 4}}]})
    with pytest.raises(PolicyError, match="rule 0 .*lowrank does not apply"):
        exact.resolve(layers, model)


rule_strategy = st.fixed_dictionaries(
    {"pattern": st.sampled_from(["encoder.*", "*ffn*", "head", "re:.*conv.*"])},
    optional={
        "prune": st.builds(lambda s: {"sparsity": s}, st.floats(0, 0.99).map(lambda x: round(x, 3))),
        "quant": st.builds(lambda b, k: {"bits": b, "kind": k}, st.sampled_from([2, 3, 4, 5, 6, 8]),
                           st.sampled_from(["linear", "log"])),
        "lowrank": st.builds(lambda f: {"rank_fraction": f}, st.floats(0.05, 1).map(lambda x: round(x, 3))),
    },
).filter(lambda r: len(r) > 1)


@settings(max_examples=40, deadline=None)
@given(st.lists(rule_strategy, min_size=1, max_size=4), st.sampled_from(["yaml", "json"]))
def test_round_trips_exactly(tmp_path_factory, rules, fmt):
    policy = Policy.from_dict({"version": 1, "rules": rules, "distill": {"temperature": 3.0, "alpha": 0.7}})
    path = tmp_path_factory.mktemp("p") / f"p.{fmt}"
    path.write_text(policy.to_yaml() if fmt == "yaml" else json.dumps(policy.to_dict()))
    back = Policy.load(path)
    assert back == policy and back.to_dict() == policy.to_dict()
    # each written config carries its version (its key is its type), checked when read back
    assert all(cfg["_version"] == 1 for r in policy.to_dict()["rules"] for k, cfg in r.items() if isinstance(cfg, dict))


@pytest.mark.parametrize(
    "doc, match",
    [
        ({"version": 2, "rules": [{"global": True, "quant": {"bits": 8}}]}, "'version' must be 1"),
        ({"version": 1, "rules": []}, "'rules' must be a non-empty list"),
        ({"version": 1, "rules": [{"global": True, "quant": {"bits": 8}}], "extra": 1}, "unknown top-level"),
        ({"version": 1, "rules": [{"pattern": "decoder.*", "quant": {"bits": 8}}]},
         "rule 0 \\(pattern 'decoder.\\*'\\): field 'pattern' matches no layer"),
        ({"version": 1, "rules": [{"name": "head.nope", "quant": {"bits": 8}}]}, "field 'name' matches no layer"),
        ({"version": 1, "rules": [{"type": "GRU", "quant": {"bits": 8}}]}, "field 'type' must be one of"),
        ({"version": 1, "rules": [{"global": True, "quant": {"bits": 8, "scheme": "x"}}]},
         "rule 0, quant: unknown field\\(s\\) \\['scheme'\\]"),
        ({"version": 1, "rules": [{"global": True, "quant": {"bits": 9}}]}, "quant.bits=9 is not one of"),
        ({"version": 1, "rules": [{"global": True, "quant": {"bits": 8, "_version": 2}}]},
         "rule 0, quant: field '_version' is 2, but this asrcompress reads version 1 of quant config"),
        ({"version": 1, "rules": [{"global": True, "prune": {"sparsity": 1.2}}]}, "prune.sparsity=1.2 is outside"),
        ({"version": 1, "rules": [{"global": True, "prune": {"sparsity": -0.1}}]}, "prune.sparsity=-0.1"),
        ({"version": 1, "rules": [{"global": True, "lowrank": {"rank": 4, "energy": 0.9}}]}, "exactly one of"),
        ({"version": 1, "rules": [{"global": True, "quant": {"bits": 2}, "cluster": {"clusters": 16}}]},
         "cluster.clusters=16 exceeds the 4 levels"),
        ({"version": 1, "rules": [{"global": True, "lowrank": {"rank": 100}}]}, "rank=100 is above min"),
        ({"version": 1, "rules": [{"global": True, "shrink": {"x": 1}}]}, "unknown field 'shrink'"),
        ({"version": 1, "rules": [{"global": True}]}, "names no method"),
        ({"version": 1, "rules": [{"global": True, "type": "Linear", "quant": {"bits": 8}}]}, "exactly one of"),
        ({"version": 1, "rules": [{"pattern": "re:([", "quant": {"bits": 8}}]}, "not a valid regex"),
        ({"version": 1, "rules": [{"global": True, "quant": [8]}]}, "must be a mapping"),
        ({"version": 1, "rules": [{"global": True, "quant": {"bits": 8}}], "distill": {"temperature": 0}},
         "distill.temperature=0 is outside"),
    ],
)
def test_bad_policies_name_the_rule_and_field(doc, match):
    model = FAMILIES["conformer"]()
    with pytest.raises(PolicyError, match=match):
        Policy.from_dict(doc).resolve(discover_layers(model), model)


def test_yaml_tags_that_construct_objects_are_refused(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("version: 1\nrules:\n  - global: true\n    quant: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(PolicyError, match="evil.yaml: not valid YAML"):
        Policy.load(p)


def test_missing_policy_file(tmp_path):
    with pytest.raises(PolicyError, match="policy file not found"):
        Policy.load(tmp_path / "none.yaml")


def test_lowrank_config_equality_is_by_value():
    assert LowRankConfig(rank_fraction=0.5) == LowRankConfig(rank_fraction=0.5)
