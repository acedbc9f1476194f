"""The sensitivity scan: which options it enumerates, the KL it reports, its cache and resume,
its MLflow run, and the command's output and errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from asrcompress.search import Option, additivity, combine, frame_kl, parse_space, random_combinations, scan, scan_options

from ..compression.models import conformer
from ..conftest import needs_synth

LAYERS = ["front.conv", "enc.0.ff", "enc.0.out", "enc.1.ff", "enc.1.out", "head"]

SPACE = {
    "version": 1,
    "groups": [
        {"pattern": "enc.*.ff", "per_layer": True, "bits": [None, 8, 4], "quant_kind": ["linear", "log"],
         "sparsity": [0.0, 0.5]},
        {"pattern": "enc.*.out", "structured": [0.0, 0.25]},
        {"name": "head", "quant_kind": ["log"], "clusters": [None, 16]},
    ],
}


def _log_probs(t: int, v: int, seed: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(t, v, generator=g).mul(3).log_softmax(-1).numpy()


class TestOptions:
    def test_each_trigger_value_with_every_modifier_combination_in_its_unit(self):
        opts = scan_options(parse_space(SPACE, Path("s.yaml")), LAYERS)
        by_unit = {}
        for o in opts:
            by_unit.setdefault(o.unit, []).append(o.label)
        # per layer: bits 8 and 4, each with linear and log, then sparsity 0.5 (neutral values are not options)
        want = ["bits=8 quant_kind=linear", "bits=8 quant_kind=log", "bits=4 quant_kind=linear",
                "bits=4 quant_kind=log", "sparsity=0.5"]
        assert sorted(by_unit["enc.0.ff"]) == sorted(want) and sorted(by_unit["enc.1.ff"]) == sorted(want)
        # a group searched as one is one unit over its layers; a modifier whose trigger is elsewhere adds nothing
        assert by_unit["g1"] == ["structured=0.25"] and by_unit["head"] == ["clusters=16"]
        assert next(o for o in opts if o.unit == "g1").layers == ("enc.0.out", "enc.1.out")
        assert len(opts) == 2 * 5 + 1 + 1

    def test_policy_turns_on_only_that_method_on_those_layers(self):
        opt = Option("enc.0.ff", ("enc.0.ff",), (("bits", 4), ("quant_kind", "log")))
        rules = opt.policy()["rules"]
        assert len(rules) == 1 and rules[0]["pattern"] == "enc.0.ff"
        assert rules[0]["quant"]["bits"] == 4 and rules[0]["quant"]["kind"] == "log"
        assert set(rules[0]) == {"pattern", "quant"} and opt.method == "quant"
        assert opt.key == "enc.0.ff|bits=4 quant_kind=log"


class TestCombinations:
    def test_combine_puts_every_method_of_a_layer_in_its_rule(self):
        a = Option("enc.0.ff", ("enc.0.ff",), (("bits", 4), ("quant_kind", "log")))
        b = Option("enc.0.ff", ("enc.0.ff",), (("sparsity", 0.5),))
        c = Option("g1", ("enc.0.out", "enc.1.out"), (("structured", 0.25),))
        rules = {r["pattern"]: r for r in combine([a, b, c])["rules"]}
        assert set(rules) == {"enc.0.ff", "enc.0.out", "enc.1.out"}
        assert rules["enc.0.ff"]["quant"]["bits"] == 4 and rules["enc.0.ff"]["prune"]["sparsity"] == 0.5
        assert rules["enc.1.out"]["structured"]["ratio"] == 0.25

    def test_draws_are_seeded_and_take_at_most_one_option_per_unit_and_method(self):
        opts = scan_options(parse_space(SPACE, Path("s.yaml")), LAYERS)
        draws = random_combinations(opts, 20, seed=3)
        assert draws == random_combinations(opts, 20, seed=3) and draws != random_combinations(opts, 20, seed=4)
        for combo in draws:
            slots = [(o.unit, o.method) for o in combo]
            assert combo and len(slots) == len(set(slots))
        assert max(len(c) for c in draws) > 2  # not only single options


class TestFrameKL:
    def test_zero_for_the_same_posteriors(self):
        p = [_log_probs(7, 5, 0), _log_probs(3, 5, 1)]
        assert frame_kl(p, [x.copy() for x in p]) == pytest.approx(0.0, abs=1e-12)

    def test_is_the_frame_mean_of_the_definition(self):
        p, q = [_log_probs(4, 3, 0), _log_probs(2, 3, 1)], [_log_probs(4, 3, 2), _log_probs(2, 3, 3)]
        total = sum(float(np.exp(pt[i]) @ (pt[i] - qt[i])) for pt, qt in zip(p, q) for i in range(pt.shape[0]))
        assert frame_kl(p, q) == pytest.approx(total / 6, rel=1e-6)

    @settings(max_examples=30, deadline=None)
    @given(t=st.integers(1, 12), v=st.integers(2, 9), seed=st.integers(0, 1000))
    def test_never_negative(self, t, v, seed):
        assert frame_kl([_log_probs(t, v, seed)], [_log_probs(t, v, seed + 1)]) >= -1e-9

    def test_refuses_outputs_of_another_length(self):
        with pytest.raises(ValueError, match="differs"):
            frame_kl([_log_probs(4, 3, 0)], [_log_probs(5, 3, 0)])


SCAN_SPACE = {
    "version": 1,
    "groups": [
        {"pattern": "encoder.conformer_layers.0.ffn1.sequential.1", "bits": [None, 8, 2], "sparsity": [0.0, 0.9]},
        {"name": "subsampling.conv2", "separable": [None, 1]},
    ],
}


@pytest.fixture()
def tiny(tmp_path):
    from asrcompress.models import save_model

    model = conformer()
    save_model(model, tmp_path / "tiny")
    return model, tmp_path / "tiny"


def _options(model):
    from asrcompress.compression import discover_layers

    return scan_options(parse_space(SCAN_SPACE, Path("s.yaml")), [l.name for l in discover_layers(model)])


@needs_synth
class TestScan:
    def test_damage_grows_with_the_cut_and_calibrating_options_need_data(self, tiny, tiny_corpus, tmp_path):
        from asrcompress.data import load_manifest

        model, folder = tiny
        dev, _ = load_manifest(tiny_corpus / "dev.jsonl")
        r = scan(model, folder, _options(model), dev[:4], tmp_path / "cache")
        rows = {row["option"]: row for row in r["rows"]}
        assert set(rows) == {"bits=8", "bits=2", "sparsity=0.9", "separable=1"}
        # 8-bit rounding moves each weight by a 64th of the 2-bit step: far less damage
        assert 0 <= rows["bits=8"]["kl"] < rows["bits=2"]["kl"] / 10
        assert rows["sparsity=0.9"]["kl"] > rows["bits=8"]["kl"]
        assert rows["bits=8"]["dwer"] == pytest.approx(rows["bits=8"]["wer"] - r["base_wer"])
        # the separable fit calibrates on training audio; none was given, so it says so
        assert rows["separable=1"]["kl"] is None and "training data" in rows["separable=1"]["skipped"]
        assert r["cached"] == 0 and r["utterances"] == 4
        # a later scan that has training data measures what was skipped for the want of it
        from asrcompress.compression import load_kd_data

        again = scan(model, folder, _options(model), dev[:4], tmp_path / "cache", lambda: load_kd_data(tiny_corpus, 4))
        assert again["cached"] == 3 and next(x for x in again["rows"] if x["option"] == "separable=1")["kl"] > 0

    def test_additivity_sums_the_scan_and_measures_each_combination(self, tiny, tiny_corpus, tmp_path):
        from asrcompress.data import load_manifest

        model, folder = tiny
        dev, _ = load_manifest(tiny_corpus / "dev.jsonl")
        opts = [o for o in _options(model) if o.method != "separable"]
        r = scan(model, folder, opts, dev[:3], tmp_path / "cache")
        add = additivity(model, folder, r, opts, dev[:3], n=6, seed=1)
        kl = {row["key"]: row["kl"] for row in r["rows"]}
        combos = random_combinations(opts, 6, seed=1)
        assert add["predicted"] == pytest.approx([sum(kl[o.key] for o in c) for c in combos])
        for combo, measured in zip(combos, add["measured"]):
            if len(combo) == 1:  # a single option is the scan's own measurement
                assert measured == pytest.approx(kl[combo[0].key], rel=1e-6)
        assert -1 <= add["spearman"] <= 1 and add["draws"] == 6 and len(add["wer"]) == 6

    def test_cached_rows_are_not_rerun_and_a_stopped_scan_resumes(self, tiny, tiny_corpus, tmp_path, monkeypatch):
        from asrcompress.data import load_manifest
        from asrcompress.search import _sensitivity

        model, folder = tiny
        dev, _ = load_manifest(tiny_corpus / "dev.jsonl")
        opts = _options(model)[:3]
        first = scan(model, folder, opts, dev[:3], tmp_path / "cache")
        cache = Path(first["cache"])
        lines = cache.read_text().splitlines()
        cache.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # killed while writing row 2
        calls = []
        real = _sensitivity.compress_and_recover
        monkeypatch.setattr(_sensitivity, "compress_and_recover", lambda *a, **k: calls.append(1) or real(*a, **k))
        again = scan(model, folder, opts, dev[:3], tmp_path / "cache")
        assert len(calls) == 2 and again["cached"] == 1
        assert [r["kl"] for r in again["rows"]] == pytest.approx([r["kl"] for r in first["rows"]], rel=1e-6)
        calls.clear()
        third = scan(model, folder, opts, dev[:3], tmp_path / "cache")
        assert calls == [] and third["cached"] == 3
        # other dev audio is another cache file: nothing stale is read
        other = scan(model, folder, opts[:1], dev[3:5], tmp_path / "cache")
        assert other["cached"] == 0 and other["cache"] != first["cache"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "asrcompress.cli", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env={**os.environ, "COLUMNS": "200"})


@needs_synth
class TestCommand:
    def test_scan_prints_logs_to_mlflow_and_calibrates_from_the_corpus(self, tiny, tiny_corpus, tmp_path):
        import mlflow
        import yaml

        _, folder = tiny
        (tmp_path / "space.yaml").write_text(yaml.safe_dump(SCAN_SPACE))
        uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
        (tmp_path / "mlruns").mkdir()
        p = cli("sensitivity", "--space", "space.yaml", "--model", str(folder), "--corpus", str(tiny_corpus),
                "--utterances", "3", "--kd-utterances", "4", "--check", "4", "--no-latency", "--tracking-uri", uri,
                "--json", cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        r = json.loads(p.stdout)
        assert len(r["rows"]) == 4 and all(row["kl"] is not None for row in r["rows"])  # separable calibrated
        client = mlflow.MlflowClient(uri)
        exp = client.get_experiment_by_name("asrcompress/space")
        run = client.get_run(r["run_id"])
        assert run.info.experiment_id == exp.experiment_id and run.data.tags["asrcompress_role"] == "sensitivity"
        assert {a.path for a in client.list_artifacts(r["run_id"])} == {"sensitivity.json", "sensitivity_heatmap.html"}
        assert run.data.metrics["options"] == 4 and r["additivity"]["draws"] == 4
        assert run.data.metrics["additivity_spearman"] == pytest.approx(r["additivity"]["spearman"])
        assert "additivity_spearman_wer" not in run.data.metrics  # a random model's WER is 1.0 throughout: no rank
        table = cli("sensitivity", "--space", "space.yaml", "--model", str(folder), "--corpus", str(tiny_corpus),
                    "--utterances", "3", "--check", "0", "--no-latency", "--no-mlflow", cwd=tmp_path)
        assert table.returncode == 0, table.stderr
        assert "most sensitive layer" in table.stdout and "4 read from" in table.stdout.replace("\n", " ")


class TestCommandErrors:
    def test_a_corpus_without_dev_split_is_one_error_line(self, tiny, tmp_path):
        from ..test_cli import assert_one_line_error

        _, folder = tiny
        (tmp_path / "space.yaml").write_text(json.dumps(SCAN_SPACE))
        (tmp_path / "empty").mkdir()
        p = cli("sensitivity", "--space", "space.yaml", "--model", str(folder), "--corpus", "empty", "--no-mlflow",
                cwd=tmp_path)
        assert_one_line_error(p, "dev.jsonl")

    def test_a_space_naming_no_layer_of_the_model_is_one_error_line(self, tiny, tmp_path):
        from ..test_cli import assert_one_line_error

        _, folder = tiny
        (tmp_path / "space.yaml").write_text(json.dumps({"version": 1, "groups": [{"name": "nope", "bits": [8]}]}))
        p = cli("sensitivity", "--space", "space.yaml", "--model", str(folder), "--corpus", ".", "--no-mlflow",
                cwd=tmp_path)
        assert_one_line_error(p, "groups[0]", "nope")


@needs_synth
def test_methods_on_one_tensor_are_priced_together(tiny, tmp_path):
    from asrcompress.compression import Policy, compress_and_recover, size_report
    from asrcompress.search import OptionCost, unit_bytes

    model, _ = tiny
    layer = "encoder.conformer_layers.0.ffn1.sequential.1"
    opts = [Option(layer, (layer,), (("bits", 4),)), Option(layer, (layer,), (("sparsity", 0.5),))]
    costs = OptionCost(model, {})
    alone = [unit_bytes(model, costs, [o], {}) for o in opts]
    together = unit_bytes(model, costs, opts, {})
    built = compress_and_recover(model, Policy.from_dict(combine(opts)))
    assert costs.total_bytes([together]) == size_report(built.model, built.states)["total_bytes"]
    assert costs.total_bytes(alone) < costs.total_bytes([together])  # the per-option sum over-counts the saving


class TestOptionCost:
    @pytest.fixture(scope="class")
    def costs(self):
        from asrcompress.hardware import load_profiles
        from asrcompress.search import OptionCost

        from ..conftest import REPO

        return OptionCost(conformer(), load_profiles(REPO / "hardware_profiles", ["host"]))

    def _priced(self, costs, opt: Option) -> dict:
        from asrcompress.compression import Policy, compress_and_recover

        built = compress_and_recover(conformer(), Policy.from_dict(opt.policy()))
        return costs.of(built.model, built.states, opt.layers, opt.label)

    def test_8_bit_saves_three_quarters_of_the_weights_less_the_scales(self, costs):
        layer = "encoder.conformer_layers.0.ffn1.sequential.1"
        w = conformer().get_submodule(layer).weight
        out_f, in_f = w.shape
        saved = -self._priced(costs, Option(layer, (layer,), (("bits", 8),)))["dbytes"]
        # fp32 (4 B) -> int8 (1 B) per weight, plus one scale (and zero point) of at most 8 B per output channel
        assert 3 * out_f * in_f - 8 * out_f <= saved <= 3 * out_f * in_f

    def test_no_sparse_kernel_no_latency_credit_and_one_export_per_shape(self, costs):
        a = "encoder.conformer_layers.0.ffn1.sequential.1"
        b = "encoder.conformer_layers.1.ffn1.sequential.1"  # the same shape in the next block
        before = costs.exports
        for choices in ((("sparsity", 0.5),), (("bits", 4), ("quant_kind", "log")), (("clusters", 16),)):
            assert self._priced(costs, Option(a, (a,), choices))["dms@host"] == 0.0  # the same dense graph
        assert costs.exports == before  # ... known without exporting it
        first = self._priced(costs, Option(a, (a,), (("bits", 4),)))
        second = self._priced(costs, Option(b, (b,), (("bits", 4),)))
        assert costs.exports == before + 1 and first["dms@host"] == second["dms@host"] != 0.0


@pytest.mark.slow
@needs_synth
def test_summed_sizes_are_exact_across_layers_and_latency_close(tiny, tiny_corpus, tmp_path):
    from asrcompress.compression import discover_layers
    from asrcompress.data import load_manifest
    from asrcompress.hardware import load_profiles
    from asrcompress.search import OptionCost

    from ..conftest import REPO

    model, folder = tiny
    dev, _ = load_manifest(tiny_corpus / "dev.jsonl")
    # one method per layer, so every combination touches each layer once
    space = {"version": 1, "groups": [
        {"pattern": "encoder.conformer_layers.*.ffn1.sequential.1", "per_layer": True, "bits": [None, 8]},
        {"pattern": "encoder.conformer_layers.*.ffn2.sequential.4", "per_layer": True, "sparsity": [0.0, 0.5]}]}
    opts = scan_options(parse_space(space, Path("s.yaml")), [l.name for l in discover_layers(model)])
    costs = OptionCost(model, load_profiles(REPO / "hardware_profiles", ["host"]))
    r = scan(model, folder, opts, dev[:2], tmp_path / "cache", costs=costs)
    assert len(opts) == 4 and all("dms@host" in row and "dbytes" in row for row in r["rows"])
    assert costs.exports == 2  # the base, and 8-bit once for both blocks' FFN; sparsity needs none
    add = additivity(model, folder, r, opts, dev[:2], n=4, seed=0, costs=costs)
    assert add["cost_relative_error"]["dbytes"]["max"] < 1e-9  # each layer's bytes are its own
    assert add["cost_relative_error"]["dbytes_per_unit"]["max"] < 1e-9
    assert add["cost_relative_error"]["dms@host"]["max"] < 0.05
