"""Re-predict the .onnx bytes of a propose folder's picks with the current surrogate code and
compare them with the measured files (the figure in docs/search.md, "Surrogate and candidates").

    .venv/bin/python scripts/repredict_onnx.py PROPOSE_OUT CORPUS

Uses the scan and unit-price caches the propose run left, and its surrogate study."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import optuna

from asrcompress._shipped import resolve
from asrcompress.compression import discover_layers
from asrcompress.models import load_model
from asrcompress.search import OptionCost, Surrogate, UnitCache, kd_loader, kept_fractions, load_space, unit_bytes


def main(folder: Path, corpus: Path) -> None:
    doc = json.loads((folder / "candidates.json").read_text())
    sp = load_space(resolve("space", Path(doc["space"])))
    base = load_model(Path(doc["model"]))
    names = [layer.name for layer in discover_layers(base)]
    rows = [json.loads(line) for line in open(doc["scan"]["cache"])]
    kd = kd_loader(corpus, 32)
    sizes, cache = OptionCost(base, {}), UnitCache(Path(doc["scan"]["cache"]).with_suffix(".units.jsonl"))
    sur = Surrogate(sp, names, rows, doc["base_bytes"], doc["base_ms"], lambda o: unit_bytes(base, sizes, o, cache, kd),
                    lambda o: kept_fractions(base, o, kd), doc["base_onnx_bytes"], doc["onnx_rest"])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = doc["surrogate"]["storage"].removeprefix("journal:")
    st = optuna.load_study(study_name=doc["surrogate"]["study"], storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(path)))
    trials = {t.number: t for t in st.trials}
    then, now = [], []
    for pick, cand in zip(doc["picks"], doc["candidates"][1:]):
        pred = sur.predict(sur.values_of(trials[pick["trial"]]))
        real = cand["onnx_bytes"]
        then.append(abs(pick["pred_onnx_bytes"] - real) / real)
        now.append(abs(pred.onnx_bytes - real) / real)
        print(f"{cand['name']}: .onnx {real / 1e6:.3f} MB; predicted then {pick['pred_onnx_bytes'] / 1e6:.3f}, "
              f"now {pred.onnx_bytes / 1e6:.3f}")
    print(f"relative error then: median {np.median(then):.1%}, max {max(then):.1%}; "
          f"now: median {np.median(now):.1%}, max {max(now):.1%}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
