"""The headline points as recipes: for each search arm and seed, its best-size and best-speed
points within 5% of the base's test WER (deployed decoder) are written to
`<out>/points/<arm>-s<seed>-best-<size|speed>.yaml`, so anyone can rebuild them with
`asrcompress compress --recipe FILE --out DIR` from the shipped base model and the built-in
corpus, and check the figures the bench measured (kept in the recipe's `measured`)."""

from __future__ import annotations

import json
from pathlib import Path

from ._report import WER_TOLERANCE


def _figures(arm, p, run: str) -> dict:
    e = p.extra
    return {"arm": arm.name, "seed": arm.seed, "point": p.label, "bench_run": run,
            "test_wer_ratio_deployed": round(e["wer_ratio_deployed"], 4),
            "ci_deployed": [round(x, 4) for x in e["ci_deployed"]],
            "test_wer_ratio_greedy": round(e["wer_ratio_greedy"], 4),
            "ci_greedy": [round(x, 4) for x in e["ci_greedy"]],
            "onnx_size_ratio": round(e["onnx_size_ratio"], 3), "file_size_ratio": round(e["file_size_ratio"], 3),
            "speedup_8s": round(e["speedup"], 3),
            "speedup_2s": round(e["speedup_2s"], 3)}


def write_points(arms, folder: Path, run: str, log=print) -> list[str]:
    """Write the recipes of every search arm's best-size and best-speed points within 5%; returns
    the files written. A point that came from no finalists stage (a one-stage trial) is skipped."""
    from ..search import recipe_of, write_recipe

    written = []
    for arm in arms:
        if arm.kind not in ("search", "random"):
            continue
        ok = [p for p in arm.points if p.runtime == "onnx" and "onnx_size_ratio" in p.extra
              and p.extra.get("wer_ratio_deployed", float("inf")) <= WER_TOLERANCE]
        picks = {"best-size": max(ok, key=lambda p: p.extra["onnx_size_ratio"], default=None),
                 "best-speed": max(ok, key=lambda p: p.extra["speedup"], default=None)}
        for what, p in picks.items():
            if p is None:
                continue
            onnx = Path(p.file)
            candidates = next((q for q in onnx.parents if (q / "finalists.json").is_file()), None)
            if candidates is None:
                log(f"bench: {arm.name} seed {arm.seed} {what}: {p.label} has no finalists stage; no recipe")
                continue
            doc = json.loads((candidates / "finalists.json").read_text())
            row = next(r for r in doc["finalists"] if r.get("onnx") == str(onnx))
            path = folder / f"{arm.name}-s{arm.seed}-{what}.yaml"
            write_recipe(path, recipe_of(doc, row["name"], _figures(arm, p, run)))
            written.append(str(path))
    return written
