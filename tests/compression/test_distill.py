import math

import pytest
import torch

from asrcompress.compression import DistillConfig, Policy, compress_model
from asrcompress.compression._distill import distill, kd_kl, kd_loss

from .models import conformer


def test_kd_loss_gradient_check():
    torch.manual_seed(0)
    n, t, v = 2, 6, 5
    student = torch.randn(n, t, v, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(n, t, v, dtype=torch.float64).log_softmax(-1)
    lengths = torch.tensor([6, 4])
    targets, target_lengths = torch.tensor([1, 2, 3, 1]), torch.tensor([2, 2])

    def f(x):
        return kd_loss(x.log_softmax(-1), teacher, lengths, targets, target_lengths, temperature=2.0, alpha=0.7)

    assert torch.autograd.gradcheck(f, (student,))


def test_kl_is_zero_for_identical_posteriors_and_ignores_padding():
    lp = torch.randn(2, 5, 7).log_softmax(-1)
    assert float(kd_kl(lp, lp, torch.tensor([5, 3]), 2.0)) == pytest.approx(0.0, abs=1e-6)
    other = lp.clone()
    other[1, 3:] = torch.randn(2, 7).log_softmax(-1)  # only padding frames differ
    assert float(kd_kl(other, lp, torch.tensor([5, 3]), 2.0)) == pytest.approx(0.0, abs=1e-6)


def _data(n=6):
    torch.manual_seed(0)
    waves = [(torch.randn(4000 + 800 * i) * 3000).short().numpy() for i in range(n)]
    targets = [torch.randint(2, 29, (3,)) for _ in range(n)]
    return waves, targets


def test_fine_tuning_keeps_masks_grids_codebooks_and_factors():
    teacher = conformer()
    policy = Policy.from_dict({"version": 1, "rules": [
        {"type": "Linear", "prune": {"sparsity": 0.5}, "quant": {"bits": 4}},
        {"type": "Conv1d", "cluster": {"clusters": 8}},
        {"name": "encoder.conformer_layers.0.ffn2.sequential.1", "lowrank": {"rank": 4}},
        {"name": "encoder.conformer_layers.1.self_attn.in_proj", "structured": {"ratio": 0.5}, "quant": {"bits": 4}},
    ]})
    student, states, _ = compress_model(teacher, policy)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    waves, targets = _data()
    summary = distill(student, teacher, states, waves, targets, DistillConfig(steps=5, lr=1e-2), batch_seconds=2.0)
    after = student.state_dict()
    assert summary["steps"] == 5 and set(after) == set(before)  # no parametrization left behind
    changed = [k for k in after if not torch.equal(after[k], before[k])]
    assert changed  # it did train
    for name, st in states.items():
        mod = student.get_submodule(name.removesuffix(".in_proj"))
        weights = [mod.first.weight, mod.second.weight] if st.rank else [
            mod.in_proj_weight if name.endswith(".in_proj") else mod.weight]
        for w in weights:
            w2d = w.reshape(w.shape[0], -1)
            if st.sparsity:
                assert int((w == 0).sum()) >= round(0.5 * w.numel())
                # every weight pruned (or rounded to zero) by compression is still zero
                assert not (before_mask(before, name, st, w) & (w != 0)).any()
            if st.bits:
                assert max(torch.unique(r).numel() for r in w2d) <= 2**st.bits
            if st.clusters:
                assert torch.unique(w[w != 0]).numel() <= st.clusters
    assert student.get_submodule("encoder.conformer_layers.0.ffn2.sequential.1").first.weight.shape == (4, 32)
    assert student.encoder.conformer_layers[1].self_attn.num_heads == 2  # heads stay removed


def before_mask(before, name, st, w):
    # The zero pattern compression produced for this tensor.
    key = name + (".first.weight" if st.rank and w.shape[0] == st.rank else
                  ".second.weight" if st.rank else ".weight")
    return before[key] == 0 if key in before else w == 0


def test_divergence_is_reported():
    teacher = conformer()
    student, states, _ = compress_model(teacher, Policy.from_dict({"version": 1, "rules": [
        {"global": True, "quant": {"bits": 8}}]}))
    waves, targets = _data(2)
    with torch.no_grad():
        student.head.bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="diverged at step 0"):
        distill(student, teacher, states, waves, targets, DistillConfig(steps=2), batch_seconds=2.0)


def test_learning_rate_schedule_warms_up_then_decays_by_cosine():
    cfg = DistillConfig(steps=10, lr=1e-3, warmup=0.2, schedule="cosine")
    lrs = [cfg.lr_at(i) for i in range(10)]
    assert lrs[:2] == pytest.approx([5e-4, 1e-3])  # 2 warm-up steps, linear up to the peak
    assert lrs[2] == pytest.approx(1e-3) and all(a > b for a, b in zip(lrs[2:], lrs[3:]))  # then strictly down
    assert cfg.lr_at(9) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 7 / 8)))
    assert cfg.lr_at(50, total=100) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 30 / 80)))
    assert [DistillConfig(steps=4).lr_at(i) for i in range(4)] == [1e-4] * 4  # the default stays constant


@pytest.mark.parametrize("field, value, match", [("warmup", 0.6, "distill.warmup=0.6"),
                                                  ("schedule", "linear", "distill.schedule='linear'")])
def test_bad_schedule_fields_are_refused(field, value, match):
    from asrcompress.compression import ConfigError

    with pytest.raises(ConfigError, match=match):
        DistillConfig(**{field: value})


def _student():
    teacher = conformer()
    policy = Policy.from_dict({"version": 1, "rules": [{"type": "Linear", "quant": {"bits": 4}}]})
    student, states, _ = compress_model(teacher, policy)
    return teacher, student, states


def test_teacher_cache_gives_the_same_student_without_teacher_forwards():
    from asrcompress.compression import TeacherCache

    waves, targets = _data()
    results = []
    for cached in (False, True):
        teacher, student, states = _student()
        cache = TeacherCache(teacher, waves, 2.0) if cached else None
        distill(student, teacher, states, waves, targets, DistillConfig(steps=6, lr=1e-2), batch_seconds=2.0,
                teacher_cache=cache)
        results.append(student.state_dict())
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])
    assert len(cache) + cache.hits == 6 and cache.hits > 0  # 6 batches drawn from fewer distinct ones
    with pytest.raises(ValueError, match="another teacher"):
        cache.get(conformer(), waves, 2.0, [0], None, None)


def test_a_second_slice_continues_the_schedule_and_the_optimizer():
    waves, targets = _data()
    teacher, student, states = _student()
    cfg = DistillConfig(steps=3, lr=1e-2, warmup=0.3, schedule="cosine")
    first = distill(student, teacher, states, waves, targets, cfg, batch_seconds=2.0, total=8)
    second = distill(student, teacher, states, waves, targets, DistillConfig(steps=5, lr=1e-2, warmup=0.3,
                     schedule="cosine"), batch_seconds=2.0, offset=3, total=8, opt_state=first["opt_state"])
    steps = {float(s["step"]) for s in second["opt_state"]["state"].values()}
    assert steps == {8.0}  # AdamW's step counts (and moments) went on from the first slice
    assert second["opt_state"]["param_groups"][0]["lr"] == pytest.approx(cfg.lr_at(7, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on a lent device machine)")
def test_distillation_on_a_gpu_keeps_the_grid_and_returns_both_models_to_the_cpu():
    from asrcompress.compression import TeacherCache

    waves, targets = _data()
    runs = {}
    for device in ("cpu", "cuda"):
        teacher, student, states = _student()
        cache = TeacherCache(teacher, waves, 2.0)
        cfg = DistillConfig(steps=2, lr=1e-2)
        first = distill(student, teacher, states, waves, targets, cfg, batch_seconds=2.0, total=4, device=device,
                        teacher_cache=cache)
        distill(student, teacher, states, waves, targets, cfg, batch_seconds=2.0, offset=2, total=4, device=device,
                opt_state=first["opt_state"], teacher_cache=cache)
        assert {p.device.type for p in (*student.parameters(), *teacher.parameters())} == {"cpu"}
        for name, st in states.items():
            w = student.get_submodule(name).weight
            assert max(torch.unique(r).numel() for r in w.reshape(w.shape[0], -1)) <= 2**st.bits
        runs[device] = student.state_dict()
    # the same steps on the same batches: equal up to float reassociation on the GPU
    diffs = [float((runs["cpu"][k] - runs["cuda"][k]).abs().max()) for k in runs["cpu"]
             if runs["cpu"][k].is_floating_point()]
    assert max(diffs) < 0.05


def test_the_cpu_device_is_the_default_path():
    waves, targets = _data()
    results = []
    for kwargs in ({}, {"device": "cpu"}, {"device": torch.device("cpu")}):
        teacher, student, states = _student()
        distill(student, teacher, states, waves, targets, DistillConfig(steps=3, lr=1e-2), batch_seconds=2.0, **kwargs)
        results.append(student.state_dict())
    assert all(torch.equal(results[0][k], r[k]) for r in results[1:] for k in results[0])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_device_cuda_without_a_gpu_is_one_error_line(tmp_path):
    from ..conftest import BASE_MODEL
    from ..test_errors import one_error_line, run_cli

    for args in (["compress", "--model", str(BASE_MODEL), "--policy", "int8", "--out", str(tmp_path / "o")],
                 ["finalists", "--candidates", str(tmp_path / "c")],
                 ["worker", "--study", "s", "--storage", f"journal:{tmp_path / 'j.journal'}"]):
        line = one_error_line(*run_cli([*args, "--device", "cuda"], tmp_path.parent))
        assert "--device cuda: no CUDA device is available" in line, args
    assert not (tmp_path / "o").exists()
