"""`asrcompress export`: pick a trial, bundle it, and measure it again on its ONNX export."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..errors import UserError
from ._pareto import knee

PICK_RE = re.compile(r"^\s*min\s+(\S+)(?:\s+where\s+(.+))?$")
COND_RE = re.compile(r"^\s*(\S+)\s*<=\s*([0-9.eE+-]+)\s*$")


def choose(study: optuna.Study, number: int | None, pick: str | None) -> optuna.trial.FrozenTrial:
    objectives = study.user_attrs["objectives"]
    done = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    if number is not None:
        if number not in done:
            raise UserError(f"--trial {number}: not a completed trial of study {study.study_name!r}")
        return done[number]
    front = study.best_trials
    if not front:
        raise UserError(f"study {study.study_name!r} has no feasible completed trial yet")
    if pick.strip() == "knee":
        return front[knee([list(t.values) for t in front])]
    return pick_min(pick, objectives, front, lambda t, o: t.values[objectives.index(o)])


def pick_min(pick: str, objectives: list[str], front: list, value: Callable[[object, str], float]):
    """The front point `pick` ("min OBJECTIVE [where OBJECTIVE <= X [and ...]]") names;
    `value(point, objective)` reads a point's figure."""
    m = PICK_RE.match(pick)
    if not m or m.group(1) not in objectives:
        raise UserError(f"--pick {pick!r}: use 'knee' or 'min OBJECTIVE [where OBJECTIVE <= X [and ...]]' with "
                        f"objectives {', '.join(objectives)}")
    cands = list(front)
    for cond in m.group(2).split(" and ") if m.group(2) else []:
        c = COND_RE.match(cond)
        if not c or c.group(1) not in objectives:
            raise UserError(f"--pick: condition {cond.strip()!r} is not 'OBJECTIVE <= NUMBER'")
        cands = [t for t in cands if value(t, c.group(1)) <= float(c.group(2))]
    if not cands:
        raise UserError(f"--pick {pick!r}: no front trial meets the condition")
    return min(cands, key=lambda t: value(t, m.group(1)))


@dataclass(frozen=True)
class Chosen:
    """What a bundle is made of: a one-stage trial's, or a staged search's finalist's."""

    number: int
    policy: dict
    values: dict[str, float]  # the objectives as the search measured them
    size_ratio: float | None
    model_dir: Path
    run_id: str | None = None
    wer_split: str = "dev (greedy)"


def choose_finalist(study: optuna.Study, number: int | None, pick: str | None) -> Chosen:
    """A staged search's finalist: `--trial N` (any finalist), the knee, or `min OBJECTIVE where
    ...` over the front, on the finalists' axes (wer, size in .onnx MB, measured latency)."""
    from ._staged_report import staged_rows

    rows = staged_rows(study)
    if number is not None:
        hits = [r for r in rows if r["trial"] == number]
        if not hits:
            raise UserError(f"--trial {number}: not a finalist of study {study.study_name!r} (finalists: "
                            f"{', '.join(str(r['trial']) for r in rows)})")
        row = hits[0]
    elif pick.strip() == "knee":
        knees = [r for r in rows if r["knee"]]
        if not knees:
            raise UserError(f"study {study.study_name!r} has no knee (no finalist on its front)")
        row = knees[0]
    else:
        row = pick_min(pick, study.user_attrs["objectives"], [r for r in rows if r["front"]],
                       lambda r, o: r["values"][o])
    return Chosen(row["trial"], row["policy"], row["values"], row["size_ratio"], Path(row["model_dir"]),
                  None, "dev (greedy, ONNX)")


def export_trial(study: optuna.Study, number: int | None, pick: str | None, out: Path,
                 tracking_uri: str | None, register: bool, overwrite: bool = False, command: str = "") -> dict:
    """Write the bundle of the chosen trial into `out` (atomically: all of it or nothing)."""
    from .._outputs import output_folder
    from ._settings import is_staged, study_settings

    objectives = study.user_attrs["objectives"]
    if is_staged(study):
        t = choose_finalist(study, number, pick)
    else:
        trial = choose(study, number, pick)
        t = Chosen(trial.number, trial.user_attrs["policy"], dict(zip(objectives, trial.values)),
                   trial.user_attrs.get("size_ratio"), Path(trial.user_attrs["model_dir"]),
                   trial.user_attrs.get("mlflow_run_id"))
    mdir = t.model_dir
    if not mdir.is_dir():
        raise UserError(f"{mdir}: trial {t.number}'s model is gone; re-run the trial or pick another")
    settings = study_settings(study)
    inputs = {"trial's model": mdir, "study's base model": Path(settings.model),
              "study's corpus": Path(settings.corpus)}
    with output_folder(out, inputs, overwrite=overwrite, command=command, kind="bundle") as stage:
        card = _bundle(study, t, mdir, stage, settings, pick, objectives, tracking_uri, register)
    return card


def _bundle(study: optuna.Study, t, mdir: Path, out: Path, settings, pick: str | None, objectives: list[str],
            tracking_uri: str | None, register: bool) -> dict:
    from ..compression import size_report
    from ..compression import read_fp32_bytes, read_states
    from ..data import load_manifest
    from ..export import OnnxAcousticModel, export_onnx
    from ..export import write_bundle, write_sums
    from ..models import features_of, load_model, read_config
    from ..objectives import DecoderConfig, evaluate, lookup
    from ._trial import latency_ms

    write_bundle(mdir, t.policy, out, {})
    model = load_model(out / "model")
    states = read_states(out / "model")
    onnx_path = Path(export_onnx(model, states, out / "model.onnx")["path"])
    corpus = Path(settings.corpus)
    onnx_model = OnnxAcousticModel(onnx_path, features_of(model))
    dev = load_manifest(corpus / "dev.jsonl")[0][: settings.dev_utterances]
    test = load_manifest(corpus / "test.jsonl")[0]
    default = DecoderConfig.from_dict(read_config(out / "model").get("decoder") or {"kind": "greedy"})
    measured = {
        "wer": evaluate(onnx_model, out / "model", dev, DecoderConfig.from_dict(settings.decoder), workers=1)["wer"],
        "test_wer": evaluate(onnx_model, out / "model", test, default)["wer"],
        "size_ratio": size_report(model, states, read_fp32_bytes(out / "model"))["ratio"],
        "onnx_bytes": onnx_path.stat().st_size,
    }
    for o in objectives:  # the hardware objectives again, on the file that ships
        if lookup(o)[0].family == "PROFILE":
            measured[o] = latency_ms(onnx_path, settings.profile(o.split("@", 1)[1]))
    card = {
        "study": study.study_name, "trial": t.number, "picked_by": pick or f"--trial {t.number}",
        "search": {**t.values, "size_ratio": t.size_ratio, "wer_split": t.wer_split},
        "measured_on_onnx": measured,
        "wer_difference_points": round(100 * (measured["wer"] - t.values["wer"]), 3),
        "decoder_for_test": default.to_dict(), "files": ["policy.yaml", "model/", "model.onnx", "SHA256SUMS"],
    }
    import json

    if register:
        card["registered"] = _register(study, t, out, tracking_uri)
    (out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    write_sums(out)
    return card


def _register(study: optuna.Study, t, out: Path, tracking_uri: str | None) -> dict:
    from ..tracking import Tracker, tracking_uri as resolve

    tracker = Tracker(resolve(tracking_uri), study.study_name)
    run_id = t.run_id or tracker.trial_runs().get(t.number)  # a finalist's run is found by its number
    return tracker.register_model(f"asrcompress-{study.study_name}", out, run_id, "candidate")
