"""A staged search's result as users read it: front rows for `front` and `export`, and the
finalists as MLflow runs with the Pareto tags (so `asrcompress ui` opens their front).

The axes are the finalists' own (`finalists.json`): dev greedy WER of the .onnx, `size` the
MB the .onnx file stores, and `latency@PROFILE` the ms measured at 8 s on 1 thread in the
interleaved loop (the predictor's where timing was skipped)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import yaml


def _doc(study: optuna.Study) -> dict:
    from ..errors import UserError

    path = Path(study.user_attrs["finalists"])
    if not path.is_file():
        raise UserError(f"{path}: study {study.study_name!r}'s finalists are gone; run the search again")
    return json.loads(path.read_text())


def _trial_numbers(study: optuna.Study) -> dict[str, int]:
    return {t.user_attrs["candidate"]: t.number for t in study.get_trials(deepcopy=False)
            if "candidate" in t.user_attrs}


def _ms(row: dict, profile: str) -> float:
    return row.get("measured_ms@8s", row[f"ms@{profile}"])


def staged_rows(study: optuna.Study) -> list[dict]:
    """Every finalist as a front row (`front_rows`' shape: `size_ratio` is the stored bytes' ratio
    to the base's; plus `name`, `front`, `feasible`, `onnx_ratio`, `speedup`, `model_dir`, `steps`),
    best dev WER first."""
    doc = _doc(study)
    numbers = _trial_numbers(study)
    prof, base = doc["profile"], doc["base"]
    folder = Path(doc["candidates"]) / "finalists"
    rows = []
    for r in doc["finalists"]:
        if not r["finalist"]:
            continue
        row = {"trial": numbers[r["name"]], "name": r["name"], "front": bool(r.get("front")),
               "knee": doc.get("knee") == r["name"],
               "values": {"wer": r["wer"], "size": r["onnx_bytes"] / 1e6, f"latency@{prof}": _ms(r, prof)},
               "size_ratio": base["bytes"] / r["bytes"], "onnx_ratio": base["onnx_bytes"] / r["onnx_bytes"],
               "speedup": _ms(base, prof) / _ms(r, prof), "feasible": r.get("feasible", True),
               "policy": yaml.safe_load((folder / r["name"] / "policy.yaml").read_text()),
               "model_dir": str(folder / r["name"] / "model"), "steps": r["best_steps"], "kl": r["kl"],
               "baseline": None}
        if "test" in r:
            row["test"] = {"test_wer": r["test"]["deployed"]["wer"], "test_wer_greedy": r["test"]["greedy"]["wer"],
                           "ratio_ci95": r["test"]["deployed"]["ci95"]}
        rows.append(row)
    return sorted(rows, key=lambda r: (r["values"]["wer"], r["values"]["size"]))


def log_finalists(study: optuna.Study, doc: dict, uri: str) -> list[dict]:
    """One MLflow run per finalist under the study's parent run (once: a resume logs only what
    is missing), with its figures and policy; the front's runs tagged pareto=true. Returns the
    finalists' rows (`staged_rows`)."""
    from ..tracking import Tracker

    tracker = Tracker(uri, study.study_name)
    parent = tracker.parent_run({"strategy": "staged", "profile": doc["profile"]})
    logged = tracker.trial_runs()
    rows = staged_rows(study)
    for r in rows:
        if r["trial"] in logged:
            continue
        run_id = tracker.start_trial(parent, r["trial"], r["policy"], [doc["profile"]])
        metrics = {**r["values"], "size_ratio": r["size_ratio"], "onnx_ratio": r["onnx_ratio"], "speedup": r["speedup"],
                   "kl": r["kl"],
                   "distill_steps": r["steps"]}
        metrics |= {k: v for k, v in r.get("test", {}).items() if k != "ratio_ci95"}
        tracker.finish_trial(run_id, metrics, "COMPLETE")
    tracker.mark_pareto({r["trial"] for r in rows if r["front"]})
    return rows
