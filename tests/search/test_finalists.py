"""The finalist stage: which candidates are distilled, the budget winners that go on after
each rung, and (on a real tiny model) successive halving with its Optuna study, intermediate
values, pruned trials and the last rung's ONNX exports."""

import json

import optuna
import pytest

from asrcompress.compression import Policy
from asrcompress.errors import UserError
from asrcompress.search import (ETA, WER_SLACK, Constraint, budgets_met, load_recipe, quantization_only, rung_slice,
                                run_finalists, run_propose, survivors, winners)

from ..conftest import needs_synth


def test_only_quantization_keeps_zero_steps():
    def pol(*rules):
        return Policy.from_dict({"version": 1, "rules": list(rules)})

    assert quantization_only(pol({"type": "Linear", "quant": {"bits": 4}}))
    assert not quantization_only(pol({"type": "Linear", "quant": {"bits": 4}, "prune": {"sparsity": 0.5}}))
    assert not quantization_only(pol({"type": "Linear", "lowrank": {"rank": 4}}))


def test_budgets_met_by_size_and_latency_ratios():
    b = budgets_met(onnx_bytes=100, ms=10.0, base_onnx=400, base_ms=20.0)  # 4x smaller, 2x faster
    assert "size>=4x,speed>=2x" in b and "size>=2x,speed>=1x" in b
    assert "size>=5x,speed>=1x" not in b and "size>=2x,speed>=2.5x" not in b
    assert budgets_met(500, 30.0, 400, 20.0) == set()


def test_each_budget_goes_to_its_least_kl_candidate():
    base = {"base_onnx": 1000, "base_ms": 30.0}
    entries = [{"name": "mild", "kl": 0.01, "onnx_bytes": 450, "ms": 29.0},  # 2.2x smaller
               {"name": "strong", "kl": 0.005, "onnx_bytes": 240, "ms": 14.0},  # 4.2x, 2.1x: beats mild everywhere
               {"name": "tiny", "kl": 0.2, "onnx_bytes": 90, "ms": 20.0},  # the only one 10x smaller
               {"name": "bad", "kl": 0.3, "onnx_bytes": 400, "ms": 25.0}]  # within budgets that strong wins
    won = winners(entries, **base)
    assert set(won) == {"strong", "tiny"}
    assert "smallest" in won["tiny"] and "fastest" in won["strong"] and "size>=10x,speed>=1x" in won["tiny"]
    # once "strong" is worse than "mild", mild wins the budgets only both meet
    won = winners([dict(entries[0]), dict(entries[1], kl=0.05), entries[2]], **base)
    assert set(won) == {"mild", "strong", "tiny"} and "size>=4x,speed>=1x" in won["strong"]
    assert all(b in {"size>=2x,speed>=1x", "size>=2x,speed>=1.25x"} or not b.startswith("size>=2x")
               for b in won["mild"])


def test_only_candidates_within_the_wer_limit_win_budgets():
    base = {"base_onnx": 1000, "base_ms": 30.0}
    entries = [{"name": "ok", "kl": 0.1, "wer": 0.13, "onnx_bytes": 450, "ms": 20.0},
               {"name": "tiny", "kl": 0.9, "wer": 0.40, "onnx_bytes": 80, "ms": 10.0}]  # smallest, fastest, far over
    assert set(winners(entries, **base)) == {"ok", "tiny"}  # no limit: tiny wins its own budgets
    won = winners(entries, **base, wer_limit=0.15)
    assert set(won) == {"ok"} and {"smallest", "fastest"} <= set(won["ok"])
    # none within: the one of least WER alone goes on, so a run keeps its best try
    assert winners(entries, **base, wer_limit=0.1) == {"ok": ["least wer"]}


def test_each_rung_keeps_at_most_a_1_over_eta_share_of_the_trained_candidates():
    won = {"a": ["b1", "b2", "b3"], "b": ["b4"], "c": ["b5"], "q": ["b6", "b7"]}  # q: 0 steps, not trained
    alive = [{"name": n, "kl": kl} for n, kl in (("a", 0.3), ("b", 0.2), ("c", 0.1), ("d", 0.05), ("e", 0.01))]
    kept = survivors(won, alive)
    assert len(kept) == -(-len(alive) // ETA) == 3  # ceil(5 / 2)
    assert kept == ["a", "c", "b"]  # most budgets first, then least KL; d and e won nothing
    assert survivors(won, alive, eta=5) == ["a"]
    assert survivors({}, alive) == []
    assert 0 < WER_SLACK < 1


def _rates(rungs, schedule, lr=2e-4):
    """Each rung's learning rates, step by step, as `distill` would set them."""
    done, out = 0, []
    for r, rung in enumerate(rungs):
        cfg, offset, total = rung_slice(rungs, r, done, lr, 0.05, schedule)
        assert cfg.steps == rung - done and cfg.schedule == "cosine"
        out.append([cfg.lr_at(offset + i, total) for i in range(cfg.steps)])
        done = rung
    return out


def test_a_per_rung_schedule_ends_every_rung_near_zero_a_single_one_only_the_last():
    lr = 2e-4
    per = _rates((100, 300, 900), "per-rung")
    # every rung warms up to the peak and is judged at its end at a learning rate near 0
    assert [len(r) for r in per] == [100, 200, 600]
    assert all(max(r) == pytest.approx(lr) and r[-1] < 1e-3 * lr for r in per)
    assert per[0][:5] == pytest.approx([lr * k / 5 for k in range(1, 6)])  # warm-up: 5% of the rung's own steps
    single = _rates((100, 300, 900), "single")
    # one cosine over 900 steps, sliced: the first rung ends near the peak, only the last near 0
    assert single[0][-1] > 0.9 * lr and single[1][-1] > 0.5 * lr and single[2][-1] < 1e-3 * lr
    flat = [x for r in single for x in r]
    assert all(a >= b for a, b in zip(flat[45:], flat[46:]))  # after the 45-step warm-up it only decays
    with pytest.raises(UserError, match="schedule 'step' is not one of per-rung, single"):
        rung_slice((10,), 0, 0, lr, 0.05, "step")


def test_a_recipe_without_a_schedule_replays_the_single_one_and_an_unknown_one_is_refused(tmp_path):
    import yaml

    rec = {"rungs": [100, 300], "best_steps": 300, "lr": 2e-4, "warmup": 0.05, "batch_seconds": 16.0, "seed": 0,
           "kd_utterances": 2000}
    doc = {"kind": "asrcompress-recipe", "version": 1, "base_model": {}, "corpus": {}, "policy": {}, "recovery": rec}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert load_recipe(path)["recovery"]["schedule"] == "single"  # what recipes were made with before it was kept
    path.write_text(yaml.safe_dump(doc | {"recovery": rec | {"schedule": "per-rung"}}))
    assert load_recipe(path)["recovery"]["schedule"] == "per-rung"
    path.write_text(yaml.safe_dump(doc | {"recovery": rec | {"schedule": "cyclic"}}))
    with pytest.raises(UserError, match=r"r.yaml: field 'recovery.schedule' \('cyclic'\) is not one of"):
        load_recipe(path)


def test_a_folder_without_candidates_is_refused(tmp_path):
    with pytest.raises(UserError, match="candidates.json: not found"):
        run_finalists(tmp_path)
    (tmp_path / "candidates.json").write_text(json.dumps({"candidates": []}))
    with pytest.raises(UserError, match="holds no measured candidates"):
        run_finalists(tmp_path)
    with pytest.raises(UserError, match="--rungs 3,2 must be increasing"):
        run_finalists(tmp_path, rungs=(3, 2))


def _folder(tmp_path, corpus):
    """A propose folder by hand: the base and three candidates. "lr-a" and "lr-b" are low-rank
    (distilled) with the same size and latency, so every budget one meets the other meets too and
    exactly one is pruned after the first rung; "q4" only quantizes (0 steps)."""
    from asrcompress.models import save_model

    from ..compression.models import conformer

    import asrcompress as ac

    save_model(conformer(), tmp_path / "tiny")
    (tmp_path / "s.yaml").write_text("version: 1\nname: s\nobjectives: [wer, latency@host]\ngroups:\n"
                                     "  - pattern: 'encoder.*'\n    bits: [null, 4]\n")
    out = tmp_path / "out"
    policies = {"q4": [{"type": "Linear", "quant": {"bits": 4}}],
                "lr-a": [{"pattern": "encoder.conformer_layers.*.ffn*.sequential.1", "lowrank": {"rank": 4}}],
                "lr-b": [{"pattern": "encoder.conformer_layers.*.ffn*.sequential.1", "lowrank": {"rank": 8}}]}
    ac.export(conformer(), out=out / "base" / "model.onnx")
    rows = [{"name": "base", "kl": 0.0, "wer": 1.0, "bytes": 4_000_000, "onnx_bytes": 4_000_000, "ms@host": 40.0}]
    for name, rules in policies.items():
        (out / name).mkdir(parents=True)
        (out / name / "policy.yaml").write_text(Policy.from_dict({"version": 1, "rules": rules}).to_yaml())
        # its export without recovery, as propose leaves it (what a 0-step finalist ships)
        ac.export(ac.compress(conformer(), {"version": 1, "rules": rules}), out=out / name / "model.onnx")
        small = name != "q4"
        rows.append({"name": name, "kl": 0.5, "wer": 1.0, "bytes": 1_000_000, "onnx_bytes": 900_000 if small else
                     1_000_000, "ms@host": 15.0 if small else 38.0})
    (out / "candidates.json").write_text(json.dumps({
        "model": str(tmp_path / "tiny"), "corpus": str(corpus), "space": str(tmp_path / "s.yaml"), "profile": "host",
        "dev_utterances": 4, "surrogate": {"study": "s-nsga2-seed0-out"}, "candidates": rows}))
    return out


@needs_synth
def test_successive_halving_on_a_tiny_model(tmp_path, tiny_corpus):
    out = _folder(tmp_path, tiny_corpus)
    storage = f"journal:{tmp_path / 'f.journal'}"
    wer = Constraint("wer", 100.0, "*")  # 100x the base's dev WER: every candidate within (1.0 here)
    doc = run_finalists(out, rungs=(2, 4), kd_utterances=8, batch_seconds=2.0, storage=storage, study="f", repeats=2,
                        min_kl=0.0, constraints=(wer,))
    assert doc["wer_limit_to_go_on"] == pytest.approx(100 * (1 + WER_SLACK))  # the space's limit, loosened
    rows = {r["name"]: r for r in doc["finalists"]}
    assert set(rows) == {"q4", "lr-a", "lr-b"} and rows["q4"]["steps"] == 0 and rows["q4"]["finalist"]
    trials = optuna.load_study(study_name="f", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "f.journal")))).trials
    by_name = {t.user_attrs["candidate"]: t for t in trials}
    assert set(by_name) == set(rows) and all(0 in t.intermediate_values for t in trials)
    # measured on the model this stage built (and keeps), not on propose's export
    assert by_name["q4"].state == optuna.trial.TrialState.COMPLETE and by_name["q4"].value == rows["q4"]["kl"] != 0.5
    assert rows["q4"]["onnx"] == str(out / "finalists" / "q4" / "model.onnx")
    first = doc["rung_log"][0]
    kept = min(("lr-a", "lr-b"), key=lambda n: by_name[n].intermediate_values[2])  # the better after rung 1
    gone = ({"lr-a", "lr-b"} - {kept}).pop()
    assert kept in first["won"] and gone not in first["won"]
    assert by_name[gone].state == optuna.trial.TrialState.PRUNED and set(by_name[gone].intermediate_values) == {0, 2}
    assert rows[gone]["steps"] == 2 and not rows[gone]["finalist"]
    t = by_name[kept]
    assert t.state == optuna.trial.TrialState.COMPLETE and set(t.intermediate_values) == {0, 2, 4}
    row = rows[kept]
    assert row["steps"] == 4 and (out / "finalists" / kept / "model.onnx").is_file() and row["onnx_bytes"] > 0
    pol = Policy.load(out / "finalists" / kept / "policy.yaml")
    assert pol.distill.steps == row["best_steps"] and pol.distill.schedule == "cosine"
    assert doc["schedule"] == "per-rung"  # recorded, and replayed by the recipe below
    # keep the better: the kept point is the least-KL one seen, before recovery included
    assert row["torch_kl"] == pytest.approx(min([t.intermediate_values[0], *(h["kl"] for h in row["history"])]))
    # timed after training, interleaved with the base: every finalist and the base, never the pruned
    timed = {r["name"] for r in doc["finalists"] if "measured_ms@8s" in r}
    assert timed == {"q4", kept} and doc["base"]["measured_ms@2s"] > 0 and doc["base"]["peak_mb"] > 0
    assert doc["knee"] in {n for n, r in rows.items() if r.get("front")} <= timed
    # reported on test with both decoders, the base's ratio 1 with itself
    assert doc["test"]["utterances"] == 8 and doc["base"]["test"]["greedy"]["ratio"] == 1.0
    assert doc["test"]["cpu_seconds"] > 0  # what the bench leaves out of an arm's CPU-hour
    for name in timed:
        g = rows[name]["test"]["greedy"]
        assert g["wer"] >= 0 and (g["ci95"][0] <= g["ratio"] <= g["ci95"][1] or g["ratio"] == float("inf"))
    assert doc["teacher_cache_hits"] > 0  # the pruned and the kept candidate shared the teacher's batches
    with pytest.raises(UserError, match="holds finalists already"):
        run_finalists(out, rungs=(2,), kd_utterances=8, storage=storage, study="g")
    _rebuilt_from_its_recipe_equals_the_finalist(tmp_path, tiny_corpus, out, doc, kept)


def _rebuilt_from_its_recipe_equals_the_finalist(tmp_path, corpus, out, doc, name):
    """`compress --recipe` replays the finalist's compression and rungs from the base and the
    corpus alone: on the same machine and threads, the same weights."""
    import torch
    from safetensors.torch import load_file

    from asrcompress.search import recipe_of, write_recipe

    from ..test_errors import one_error_line, run_cli

    recipe = recipe_of(doc, name, {"test_wer_ratio_deployed": 1.0})
    assert recipe["recovery"]["best_steps"] == next(r for r in doc["finalists"] if r["name"] == name)["best_steps"]
    write_recipe(tmp_path / "r.yaml", recipe)
    args = ["compress", "--recipe", str(tmp_path / "r.yaml"), "--model", str(tmp_path / "tiny"), "--corpus", str(corpus),
            "--threads", str(torch.get_num_threads())]
    code, _, err = run_cli([*args, "--out", str(tmp_path / "rebuilt")], tmp_path)
    assert code == 0, err[-3000:]
    want = load_file(str(out / "finalists" / name / "model" / "model.safetensors"))
    got = load_file(str(tmp_path / "rebuilt" / "model.safetensors"))
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    record = json.loads((tmp_path / "rebuilt" / "compression.json").read_text())
    assert record["recipe"]["measured"] == {"test_wer_ratio_deployed": 1.0}
    from asrcompress.models import load_model

    load_model(tmp_path / "rebuilt")  # the folder loads like any compressed model (its record's keys known)
    # another base model, or both --policy and --recipe: one line each, nothing written
    from ..compression.models import conformer
    from asrcompress.models import save_model

    other = conformer()
    with torch.no_grad():
        other.head.weight.mul_(1.01)
    save_model(other, tmp_path / "other")
    line = one_error_line(*run_cli([*args[:4], str(tmp_path / "other"), *args[5:], "--out", str(tmp_path / "x")],
                                   tmp_path))
    assert "is not the recipe's" in line and not (tmp_path / "x").exists()
    line = one_error_line(*run_cli([*args, "--policy", "int8", "--out", str(tmp_path / "y")], tmp_path))
    assert "--policy" in line and "--recipe" in line


@pytest.mark.slow  # 30 s (make test-reliability runs it)
@needs_synth
def test_finalists_command_prints_its_table(tmp_path, tiny_corpus):
    from typer.testing import CliRunner

    from asrcompress.cli import app

    out = _folder(tmp_path, tiny_corpus)
    r = CliRunner().invoke(app, ["finalists", "--candidates", str(out), "--rungs", "2", "--kd-utterances", "8",
                                 "--batch-seconds", "2", "--no-time", "--min-kl", "1000",
                                 "--storage", f"journal:{tmp_path / 'f.journal'}"])
    assert r.exit_code == 0, r.output
    assert "Finalists" in r.output and "q4" in r.output and "knee" in r.output and "On test (8 utterances" in r.output
    doc = json.loads((out / "finalists.json").read_text())
    assert doc["front_axes"][2] == "ms@host"
    assert all(r["steps"] == 0 for r in doc["finalists"])  # every candidate within --min-kl: none distilled


@needs_synth
def test_a_failure_after_training_keeps_what_was_trained(tmp_path, tiny_corpus, monkeypatch):
    import asrcompress.search._finalists as fin

    def broken(*a, **k):
        raise RuntimeError("timing machine gone")

    monkeypatch.setattr(fin, "time_finalists", broken)
    out = _folder(tmp_path, tiny_corpus)
    with pytest.raises(RuntimeError, match="timing machine gone"):
        run_finalists(out, rungs=(2,), kd_utterances=8, batch_seconds=2.0, storage=f"journal:{tmp_path / 'f.journal'}",
                      min_kl=0.0)
    doc = json.loads((out / "finalists.json").read_text())
    assert "timing" not in doc and {r["name"] for r in doc["finalists"] if r["steps"]} == {"lr-a", "lr-b"}
    assert all((out / "finalists" / r["name"] / "model.onnx").is_file() for r in doc["finalists"] if r["steps"])
