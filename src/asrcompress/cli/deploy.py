"""Deployment commands: export-onnx, latency, calibrate, verify."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import UserError
from ._app import app, err, out


def _onnx_path(model: Path, tmp: Path) -> Path:
    """An ONNX file as given, or a model folder exported into `tmp`."""
    if model.suffix == ".onnx":
        if not model.is_file():
            raise UserError(f"{model}: ONNX file not found")
        from ..export import session

        session(model)  # a one-line error for a file ONNX Runtime cannot load
        return model
    from ..compression import read_states
    from ..export import export_onnx
    from ..models import load_model

    with err.status(f"exporting {model} to ONNX"):
        return Path(export_onnx(load_model(model), read_states(model), tmp / "model.onnx")["path"])


@app.command("export-onnx")
def export_onnx_cmd(
    model_dir: Annotated[Path, typer.Option("--model", help="Model folder (compressed or not)")],
    out_file: Annotated[Path, typer.Option("--out", help="ONNX file to write")],
    accuracy_level: Annotated[int, typer.Option(help="MatMulNBits accuracy_level (0: fp32 compute, 4: int8)")] = 0,
    calibration: Annotated[Optional[Path], typer.Option(
        help="Manifest or LibriSpeech folder: int8 layers then quantize activations with ranges measured "
             "on it (static) instead of at run time (dynamic)")] = None,
    calibration_utterances: Annotated[int, typer.Option(help="Utterances taken from --calibration")] = 64,
    profile_path: Annotated[Optional[Path], typer.Option(
        "--profile", help="Calibrated profile of the target (YAML or a shipped name): its measured int8_paths "
                          "table picks u8 x u8 or u8 x s8 per layer (default: the shipped host's, for 5-7 bits)")] = None,
) -> None:
    """Export to ONNX (dynamic time axis) with int8 and 4-bit kernels for quantized layers."""
    from .._outputs import refuse_overlap
    from ..compression import read_states
    from ..export import calibration_features, export_onnx
    from ..models import features_of, load_model

    refuse_overlap(out_file, {"model": model_dir, "calibration set": calibration})
    if accuracy_level not in (0, 1, 2, 3, 4):
        raise UserError(f"--accuracy-level {accuracy_level} is not one of 0, 1, 2, 3, 4")
    if calibration_utterances < 1:
        raise UserError(f"--calibration-utterances {calibration_utterances} must be at least 1")
    paths = None
    if profile_path is not None:
        from .._shipped import resolve
        from ..hardware import load_profile

        profile = load_profile(resolve("profile", profile_path))
        if profile.int8_paths is None:
            raise UserError(f"{profile.path}: has no int8_paths table (run asrcompress calibrate on the target to measure one)")
        paths = profile.int8_paths
    model = load_model(model_dir)
    feats = None
    if calibration is not None:
        from ..data import load_dataset
        from ..data import read_audio

        utts, _ = load_dataset(calibration)
        if not utts:
            raise UserError(f"{calibration}: no usable utterances for calibration")
        with err.status(f"computing features of {min(calibration_utterances, len(utts))} calibration utterances"):
            feats = calibration_features([read_audio(u.audio_filepath) for u in utts[:calibration_utterances]],
                                         features_of(model))
    with err.status("exporting"):
        report = export_onnx(model, read_states(model_dir), out_file, accuracy_level, calibration=feats,
                             int8_paths=paths)
    kernels: dict[str, int] = {}
    for k in report["layers"].values():
        kernels[k] = kernels.get(k, 0) + 1
    report["kernels"] = kernels
    report["input"] = features_of(model).to_dict()  # what the app feeds the graph
    print(json.dumps(report, indent=2))


@app.command()
def latency(
    model: Annotated[Path, typer.Option("--model", help="Model folder or exported .onnx file")],
    profile_path: Annotated[Path, typer.Option("--profile", help="A profile YAML, or the name of a shipped one "
                                                                 "(host, rpi4, rpi5, phone_x3, ...)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    repeats: Annotated[int, typer.Option(help="Timed runs per length (measured profiles)")] = 20,
) -> None:
    """Latency, real-time factor and peak memory: measured on this machine's profile, predicted on others."""
    import tempfile

    from .._shipped import resolve
    from ..hardware import latency_report, load_profile

    profile = load_profile(resolve("profile", profile_path))
    if repeats < 1:
        raise UserError(f"--repeats {repeats} must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        path = _onnx_path(model, Path(tmp))
        with err.status(("measuring" if profile.measure else "predicting") + f" on {profile.name}"):
            report = latency_report(path, profile, repeats=repeats)
    if as_json:
        print(json.dumps(report))
        return
    lengths = "  ".join(f"{k}: {v['latency_ms']:.1f} ms" for k, v in report["per_length"].items())
    out.print(f"{report['profile']} ({report['source']}, {report['threads']} thread(s)): {lengths}  "
              f"RTF {report['rtf']:.4f}  peak memory {report['peak_mem_mb']:.1f} MB  "
              f"chunk {report['streaming']['chunk_s']} s: {report['streaming']['chunk_ms']:.1f} ms")


@app.command("calibrate")
def calibrate_cmd(
    out_file: Annotated[Path, typer.Option("--out", help="Profile YAML to write")],
    name: Annotated[str, typer.Option(help="Profile name")] = "host",
    threads: Annotated[int, typer.Option(help="Threads the deployment will use")] = 1,
    quick: Annotated[bool, typer.Option(help="Fewer shapes (for tests); less accurate")] = False,
    reference: Annotated[bool, typer.Option(help="Fit the whole-graph factor on a reference Conformer")] = True,
) -> None:
    """Run micro-benchmarks on this machine and write a calibrated, measured hardware profile."""

    from ..hardware import write_profile

    if not 1 <= threads <= (os.cpu_count() or 1):
        raise UserError(f"--threads {threads} must be between 1 and this machine's {os.cpu_count()} CPUs")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task("micro-benchmarks", total=None)
        doc = write_profile(out_file, name, threads, quick, reference,
                            progress=lambda d, t: progress.update(task, completed=d, total=t))
    out.print(f"wrote {out_file}: fp32 {doc['fp32_gflops']} GFLOP/s, int8 {doc['int8_gops']} GOP/s, "
              f"int4 {doc['int4_gops']} GOP/s, whole-graph factors "
              + (", ".join(f"{g} {f}" for g, f in doc["calibration_factors"].items())
                 if "calibration_factors" in doc else "none (--no-reference)"))


# --- search, front, ui, export -------------------------------------------------------------


@app.command()
def verify(bundle: Annotated[Path, typer.Option(help="Export bundle folder")]) -> None:
    """Check every file of an export bundle against its SHA256SUMS (and that none was added)."""
    from ..export import SUMS, verify_bundle

    if not bundle.is_dir():
        raise UserError(f"{bundle}: bundle folder not found")
    verify_bundle(bundle)
    n = len((bundle / SUMS).read_text().splitlines())
    out.print(f"{bundle}: {n} files match {SUMS}")
