"""Who goes on after each rung of the finalists' successive halving: the candidates that win a
size x latency budget of the propose stage within the space's WER limit, at most 1/ETA of
them. Pure functions of the rung's figures, so they are tested without training."""

from __future__ import annotations

from ._surrogate import SIZE_RATIOS, SPEEDUPS

RUNGS = (100, 300, 900)  # distillation steps done in all by the end of each rung
# A candidate this close to the base (dev KL per frame before recovery) keeps 0 steps, like a
# quantization-only one: on the shipped model, distillation at 2e-4 raised such candidates' KL
# (0.002 to 0.058 mid-run) and gained no dev WER after 450 steps (docs/search.md, Finalists).
MIN_KL = 0.05
# How far over the WER limit (relative) a candidate's dev WER may be and still go on. On the
# shipped model the structural candidates' dev WER fell by at most 19% from 100 to 900 steps
# (bench run 75c49c39, seed 0: 0.243 -> 0.197), so one further over has no prospect; the slack
# also covers the noise of 100 dev utterances.
WER_SLACK = 0.2
ETA = 2  # successive halving: at most ceil(n / ETA) of n trained candidates go on after a rung


def quantization_only(policy) -> bool:
    """Only the quant method, on any layer: its rounding is its recovery, so 0 distillation steps."""
    keys = {key for rule in policy.rules for key, cfg in rule.methods if cfg is not None}
    return not policy.model_methods and keys <= {"quant"}


def budgets_met(onnx_bytes: int, ms: float, base_onnx: int, base_ms: float) -> set[str]:
    """The propose stage's size x latency budgets a model of these figures is within."""
    return {f"size>={r:g}x,speed>={s:g}x" for r in SIZE_RATIOS for s in SPEEDUPS
            if onnx_bytes * r <= base_onnx and ms * s <= base_ms}


def winners(entries: list[dict], base_onnx: int, base_ms: float,
            wer_limit: float | None = None) -> dict[str, list[str]]:
    """name -> the budgets it wins: each budget's least-KL entry among those within it, and the
    smallest and fastest entries (ties broken by KL). Entries: name, kl, wer, onnx_bytes, ms.
    Only entries with a dev WER within `wer_limit` (None: no limit) compete; if none is, the
    entry of least WER alone wins ("least wer"), so a run always keeps its best try."""
    ok = [e for e in entries if wer_limit is None or e["wer"] <= wer_limit]
    if entries and not ok:
        return {min(entries, key=lambda e: (e["wer"], e["kl"]))["name"]: ["least wer"]}
    won: dict[str, list[str]] = {}
    labels: dict[str, set[str]] = {e["name"]: budgets_met(e["onnx_bytes"], e["ms"], base_onnx, base_ms) for e in ok}
    for budget in sorted(set().union(*labels.values()) if labels else ()):
        best = min((e for e in ok if budget in labels[e["name"]]), key=lambda e: (e["kl"], e["onnx_bytes"]))
        won.setdefault(best["name"], []).append(budget)
    for label, axis in (("smallest", "onnx_bytes"), ("fastest", "ms")):
        if ok:
            won.setdefault(min(ok, key=lambda e: (e[axis], e["kl"]))["name"], []).append(label)
    return won


def survivors(won: dict[str, list[str]], alive: list[dict], eta: int = ETA) -> list[str]:
    """The trained candidates that go on to the next rung: those of `alive` (name, kl) that win
    a budget, at most ceil(len(alive) / eta) of them, the ones winning the most budgets first
    (then the least KL)."""
    ranked = sorted((e for e in alive if e["name"] in won), key=lambda e: (-len(won[e["name"]]), e["kl"]))
    return [e["name"] for e in ranked[:-(-len(alive) // eta)]]
