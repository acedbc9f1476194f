"""Knowledge-distillation recovery of a compressed model from its uncompressed teacher.

loss = alpha * T^2 * KL(teacher/T || student/T) + (1 - alpha) * CTC, over valid frames.

What compression decided is kept through fine-tuning: every compressed weight is trained
through a parametrization that re-applies its mask, snaps to its codebook and fake-quantizes
to its grid on each forward pass (straight-through gradients), and is baked back into a
plain weight at the end. Low-rank factors and structurally pruned shapes stay as they are.
"""

from __future__ import annotations

import random
from dataclasses import replace
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ..models import SEP, TOKENS, find_adapter, log_probs
from ._apply import LayerState
from ._configs import DistillConfig, MethodConfig
from ._layers import discover_layers, factor_modules
from ._quant import round_small_tensors
from ._registry import Projection, handler_for, ordered


def kd_kl(student_lp: torch.Tensor, teacher_lp: torch.Tensor, lengths: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over valid frames of KL(p_teacher^T || p_student^T); inputs (N, T', V) log-probs.

    Dividing log-probabilities by T and re-normalising equals softmax(logits / T).
    """
    t = F.log_softmax(teacher_lp / temperature, dim=-1)
    s = F.log_softmax(student_lp / temperature, dim=-1)
    mask = (torch.arange(student_lp.shape[1], device=lengths.device)[None, :] < lengths[:, None]).to(s.dtype)
    per_frame = (t.exp() * (t - s)).sum(-1)  # (N, T')
    return (per_frame * mask).sum() / mask.sum().clamp(min=1)


def kd_loss(student_lp: torch.Tensor, teacher_lp: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
            target_lengths: torch.Tensor, temperature: float, alpha: float, blank: int = 0) -> torch.Tensor:
    kl = kd_kl(student_lp, teacher_lp, lengths, temperature)
    ctc = F.ctc_loss(student_lp.transpose(0, 1), targets, lengths, target_lengths, blank=blank, zero_infinity=True)
    return alpha * temperature**2 * kl + (1 - alpha) * ctc


def ctc_targets(model: nn.Module) -> tuple[Callable[[list[torch.Tensor]], list[torch.Tensor]], int]:
    """Training targets come in the built-in character ids (`load_kd_data`). For a model of another
    vocabulary (a Hugging Face model's): a map into its ids, dropping characters it lacks, and its blank."""
    adapter = find_adapter(model)
    vocab = adapter.vocabulary(model) if adapter is not None else None
    if vocab is None or vocab.tokens == TOKENS:
        return (lambda tgt: tgt), 0
    table = vocab.ids_of(TOKENS, SEP)

    def remap(tgt: list[torch.Tensor]) -> list[torch.Tensor]:
        return [m[m >= 0] for m in (table[t] for t in tgt)]

    return remap, vocab.blank


class _Keep(nn.Module):
    """Forward: each method's projection in order (mask, snap to codebook, fake-quantize);
    backward: straight through."""

    def __init__(self, projections: list[Projection]) -> None:
        super().__init__()
        self.projections = projections

    def project(self, w: torch.Tensor) -> torch.Tensor:
        for p in self.projections:
            w = p(w)
        return w

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.project(w)
        return w + (target - w).detach()


def _owners(model: nn.Module, states: dict[str, LayerState]) -> list[tuple[nn.Module, str, list[Projection]]]:
    """(module, parameter name, projections) for every stored weight tensor that must keep its form."""
    out = []
    for layer in discover_layers(model):
        st = states.get(layer.name)
        if st is None:
            continue
        m = model.get_submodule(layer.module_name)
        factors = factor_modules(m)
        pairs = [(f, "weight") for f in factors] if factors else [(m, layer.param_name)]
        for module, pname in pairs:
            weight = getattr(module, pname)
            projections = [p for p in (meth.handler.keep(weight, st) for meth in ordered()) if p is not None]
            if projections:
                out.append((module, pname, projections))
    return out


class TeacherCache:
    """The teacher's log-probabilities per distillation batch, computed on first use and shared
    by the slices of one recovery and by every student distilled from the same teacher on the
    same waves (a finalist stage): no teacher forward pass per step. The teacher is in eval mode
    and the batch is padded the same way each time, so a cached batch equals a fresh forward."""

    def __init__(self, teacher: nn.Module, waves: list, batch_seconds: float) -> None:
        self._key = (id(teacher), id(waves), batch_seconds)
        self._lps: dict[tuple[int, ...], torch.Tensor] = {}
        self.hits = 0

    def __len__(self) -> int:
        return len(self._lps)

    def get(self, teacher: nn.Module, waves: list, batch_seconds: float, idx: list[int], wave: torch.Tensor,
            lens: torch.Tensor) -> torch.Tensor:
        if (id(teacher), id(waves), batch_seconds) != self._key:
            raise ValueError("this teacher cache holds another teacher's or another data set's batches")
        key = tuple(idx)
        if key in self._lps:
            self.hits += 1
        else:
            with torch.no_grad():
                self._lps[key] = log_probs(teacher, wave, lens)[0]
        return self._lps[key].to(wave.device)  # a no-op unless an earlier student ran elsewhere


def distill(
    student: nn.Module,
    teacher: nn.Module,
    states: dict[str, LayerState],
    waves: list,
    targets: list[torch.Tensor],
    cfg: DistillConfig,
    batch_seconds: float = 40.0,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    penalties: list[tuple[nn.Module, str, MethodConfig]] | None = None,
    offset: int = 0,
    total: int | None = None,
    opt_state: dict | None = None,
    teacher_cache: TeacherCache | None = None,
    device: str | torch.device = "cpu",
) -> dict:
    """Fine-tune `student` in place for cfg.steps; returns loss history, wall time and the
    optimizer's state.

    A run may be one slice of a longer one: its steps are `offset`.. of `total` on the learning
    rate schedule, and `opt_state` (the previous slice's) carries AdamW's moments over.
    `penalties` adds each listed weight's sparsity penalty to the loss.
    `device` is where the steps run (a GPU: "cuda"); student and teacher come back to the CPU
    either way, so what is exported and scored is the same.
    """
    if cfg.steps == 0:
        return {"steps": 0, "seconds": 0.0, "loss_first": None, "loss_last": None, "opt_state": opt_state}
    device = torch.device(device)
    # Moved before the parametrizations are registered, so masks and codebooks live there too
    # (on the CPU every move is a no-op).
    student.to(device)
    teacher.to(device)
    try:
        return _distill(student, teacher, states, waves, targets, cfg, batch_seconds, seed, on_step, penalties,
                        offset, total, opt_state, teacher_cache, device)
    finally:
        student.to("cpu")
        teacher.to("cpu")


def _distill(student: nn.Module, teacher: nn.Module, states: dict[str, LayerState], waves: list,
             targets: list[torch.Tensor], cfg: DistillConfig, batch_seconds: float, seed: int,
             on_step: Callable[[int, int], None] | None,
             penalties: list[tuple[nn.Module, str, MethodConfig]] | None, offset: int, total: int | None,
             opt_state: dict | None, teacher_cache: TeacherCache | None, device: torch.device) -> dict:
    from ..data import collate as _collate, make_batches

    owners = _owners(student, states)
    for module, pname, projections in owners:
        parametrize.register_parametrization(module, pname, _Keep(projections))
    teacher.eval()
    student.train()
    # Dropout off and BatchNorm statistics frozen: recovery is short, its batches are small,
    # and the student should match the teacher frame by frame.
    for m in student.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0)
    if opt_state is not None:  # same parameters in the same order: the parametrizations are registered alike
        opt.load_state_dict(opt_state)
    total = total or offset + cfg.steps
    batches = make_batches([w.size / 16000 for w in waves], batch_seconds)
    rng = random.Random(seed)
    losses = []
    remap, blank = ctc_targets(student)
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        idx = batches[rng.randrange(len(batches))]
        wave, lens = _collate(waves, idx, device)
        tgt = remap([targets[i] for i in idx])
        if teacher_cache is not None:
            t_lp = teacher_cache.get(teacher, waves, batch_seconds, idx, wave, lens)
        else:
            with torch.no_grad():
                t_lp, _ = log_probs(teacher, wave, lens)
        for group in opt.param_groups:
            group["lr"] = cfg.lr_at(offset + step, total)
        s_lp, out_lens = log_probs(student, wave, lens)
        loss = kd_loss(s_lp, t_lp, out_lens, torch.cat(tgt).to(device),
                       torch.tensor([t.numel() for t in tgt], device=device), cfg.temperature, cfg.alpha, blank)
        for module, pname, reg in penalties or ():
            loss = loss + handler_for(reg).penalty(getattr(module, pname), reg)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"distillation diverged at step {step} (loss {loss.item()})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 5.0)
        opt.step()
        losses.append(loss.item())
        if on_step:
            on_step(step + 1, cfg.steps)
    # Bake: the projected (masked / snapped / quantized) values become the plain weights.
    # Projecting the trained original again is exact; w + (q - w) from the forward pass can
    # be off q by a rounding error, which would break the codebook and the grid.
    with torch.no_grad():
        for module, pname, _ in owners:
            param = module.parametrizations[pname]
            exact = param[0].project(param.original)
            parametrize.remove_parametrizations(module, pname, leave_parametrized=False)
            getattr(module, pname).copy_(exact)
    student.to("cpu")  # stored and rounded where it is exported; a no-op on the CPU
    if any(st.bits for st in states.values()):
        round_small_tensors(student)  # biases and norms trained off the fp16 numbers they are stored as
    student.eval()
    return {"steps": cfg.steps, "seconds": round(time.perf_counter() - t0, 1),
            "loss_first": losses[0], "loss_last": sum(losses[-10:]) / len(losses[-10:]), "opt_state": opt.state_dict()}


def regularizer(teacher: nn.Module, waves: list, targets: list[torch.Tensor], kd: DistillConfig,
                batch_seconds: float = 40.0, device: str = "cpu"):
    """The `regularize` step for compress_model: KD plus sparsity penalties, for the longest
    `steps` among the layers' sparsity_reg configs."""

    def run(model: nn.Module, penalties: list[tuple[nn.Module, str, MethodConfig]]) -> None:
        steps = max(reg.steps for _, _, reg in penalties)
        distill(model, teacher, {}, waves, targets, replace(kd, steps=steps), batch_seconds=batch_seconds,
                penalties=penalties, device=device)

    return run


def taylor_gradients(waves: list, targets: list[torch.Tensor], batches: int = 8, batch_seconds: float = 40.0,
                     seed: int = 0):
    """The `gradients` step for compress_model: CTC loss gradients summed over a few training
    batches (dropout off), for the taylor structured-pruning criterion."""
    from ..data import collate as _collate, make_batches

    def run(model: nn.Module) -> None:
        model.eval()
        model.zero_grad(set_to_none=True)
        groups = make_batches([w.size / 16000 for w in waves], batch_seconds)
        rng = random.Random(seed)
        remap, blank = ctc_targets(model)
        for _ in range(min(batches, len(groups))):
            idx = groups[rng.randrange(len(groups))]
            wave, lens = _collate(waves, idx, torch.device("cpu"))
            tgt = remap([targets[i] for i in idx])
            lp, out_lens = log_probs(model, wave, lens)
            F.ctc_loss(lp.transpose(0, 1), torch.cat(tgt), out_lens, torch.tensor([t.numel() for t in tgt]),
                       blank=blank, zero_infinity=True).backward()

    return run
