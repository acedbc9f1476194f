"""Command-line interface. Bad input prints one line naming the bad item and exits with code 2."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Search layer-wise compression policies for speech acoustic models.")
err = Console(stderr=True)
out = Console()


@app.callback()
def _global_options(
    trust_pickle: Annotated[bool, typer.Option(
        "--trust-pickle", help="Allow model folders whose weights are a pickle checkpoint (model.pt); they are "
                               "still read with torch.load(weights_only=True)")] = False,
) -> None:
    if trust_pickle:
        from .models._io import TRUST_PICKLE_ENV

        os.environ[TRUST_PICKLE_ENV] = "1"


def _command_line() -> str:
    return "asrcompress " + " ".join(sys.argv[1:])


@app.command()
def corpus(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write audio and manifests into")],
    seed: Annotated[int, typer.Option(help="Seed for sentences, voices and augmentation")] = 0,
    size: Annotated[str, typer.Option(help="small (tests, demos) or default (>= 10k training utterances)")] = "default",
    workers: Annotated[int, typer.Option(help="Synthesis processes; 0 = all cores")] = 0,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing non-empty --out folder that asrcompress did not write")] = False,
) -> None:
    """Synthesise the built-in benchmark corpus (espeak-ng + flite) with train/dev/test manifests.
    Interrupted, it resumes: running the same command again keeps the splits already made."""
    from ._outputs import output_folder
    from .data import SIZES, build_corpus

    if size not in SIZES:
        raise UserError(f"--size {size!r} is not one of {', '.join(SIZES)}")
    with output_folder(out_dir, {}, overwrite=overwrite, command=_command_line(), kind="corpus",
                       resume=True) as stage, Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err) as progress:
        tasks: dict[str, int] = {}

        def update(split: str, done: int, total: int) -> None:
            if split not in tasks:
                tasks[split] = progress.add_task(f"synthesising {split}", total=total)
            progress.update(tasks[split], completed=done)

        summary = build_corpus(stage, seed=seed, size=size, workers=workers or None, progress=update)
    out.print(json.dumps(summary, indent=2))


@app.command()
def train(
    corpus_dir: Annotated[Path, typer.Option("--corpus", help="Corpus folder with train/dev/test.jsonl")],
    out_dir: Annotated[Path, typer.Option("--out", help="Model folder to write (resumes if it has a checkpoint)")],
    epochs: Annotated[int, typer.Option(help="Training epochs")] = 60,
    max_minutes: Annotated[float, typer.Option(help="Stop (resumably) after this much wall time")] = 170.0,
    batch_seconds: Annotated[float, typer.Option(help="Audio seconds per batch")] = 320.0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    workers: Annotated[int, typer.Option(help="Audio-loading processes; 0 = all cores")] = 0,
    finalize_after: Annotated[bool, typer.Option("--finalize/--no-finalize",
                                                 help="Build LM + lexicon, tune decoder, score, write card")] = True,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing non-empty --out folder that asrcompress did not write")] = False,
) -> None:
    """Train the Conformer-CTC base model from scratch (checkpoints and resumes). The model
    folder appears at --out only when training (and finalize) is complete."""
    import torch

    from ._outputs import is_ours, output_folder, real
    from .models._train import TrainConfig

    if device not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device {device!r} is not one of auto, cpu, cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available on this machine")
    for name in ("train", "dev"):
        if not (corpus_dir / f"{name}.jsonl").is_file():
            raise UserError(f"{corpus_dir / (name + '.jsonl')}: not found; build one with `asrcompress corpus`")
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    cfg = TrainConfig(epochs=epochs, max_minutes=max_minutes, batch_seconds=batch_seconds, workers=workers)
    # Unfinished training lives in a resumable hidden sibling of --out; going on from a finished
    # model of ours (more epochs) starts from a copy of it.
    with output_folder(out_dir, {"corpus": corpus_dir}, overwrite=overwrite, command=_command_line(), kind="model",
                       resume=True, start_from=real(out_dir) if is_ours(out_dir) else None) as stage:
        _train_into(stage, corpus_dir, cfg, dev, finalize_after)


def _train_into(out_dir: Path, corpus_dir: Path, cfg, dev, finalize_after: bool) -> None:
    import torch

    from .models import ModelConfig
    from .models._card import finalize
    from .models._train import train as run_train

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task("training steps", total=None)

        def on_step(step: int, total: int) -> None:
            progress.update(task, completed=step, total=total)

        summary = run_train(corpus_dir, out_dir, ModelConfig(), cfg, dev, log=progress.console.print,
                            on_step=on_step)
    summary["hardware"] = torch.cuda.get_device_name() if dev.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    summary["command"] = _command_line()
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not summary["finished"]:
        raise typer.Exit(3)
    if finalize_after:
        card = finalize(out_dir, corpus_dir, summary, _command_line(), log=err.print)
        out.print(json.dumps({k: card[k] for k in ("parameters", "wer", "cer", "greedy_wer")}, indent=2))


@app.command()
def finalize(
    model_dir: Annotated[Path, typer.Option("--model", help="Trained model folder")],
    corpus_dir: Annotated[Path, typer.Option("--corpus", help="The corpus it was trained on")],
    out_dir: Annotated[Optional[Path], typer.Option(
        "--out", help="Write the finalized model here (default: update --model, if asrcompress wrote it)")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing non-empty --out folder that asrcompress did not write")] = False,
) -> None:
    """Build the LM and lexicon from training text, tune the decoder on dev, score dev/test, write the card."""
    from ._json import read_json
    from ._outputs import output_folder
    from .models import load_model
    from .models._card import finalize as run_finalize

    load_model(model_dir)  # one line for a folder that is no model
    inputs = {"corpus": corpus_dir} | ({"model": model_dir} if out_dir is not None else {})
    with output_folder(out_dir or model_dir, inputs, overwrite=overwrite, command=_command_line(), kind="model",
                       start_from=model_dir, flag="--out" if out_dir is not None else "--model") as stage:
        summary_path = stage / "train_summary.json"
        summary = read_json(summary_path) if summary_path.exists() else {}
        card = run_finalize(stage, corpus_dir, summary, summary.get("command", _command_line()), log=err.print)
    out.print(json.dumps({k: card[k] for k in ("parameters", "wer", "cer", "greedy_wer")}, indent=2))


@app.command()
def evaluate(
    model_dir: Annotated[Path, typer.Option("--model", help="Model folder")],
    manifest: Annotated[Path, typer.Option(help="JSONL manifest or LibriSpeech folder")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    decoder: Annotated[Optional[str], typer.Option(help="greedy or beam_lm (default: the model's setting)")] = None,
    strict: Annotated[bool, typer.Option(help="Fail on the first bad entry instead of skipping it")] = False,
    workers: Annotated[int, typer.Option(help="Decoding processes; 0 = all cores")] = 0,
    onnx_file: Annotated[Optional[Path], typer.Option(
        "--onnx", help="Run this ONNX export of the model instead (the folder gives the decoder, lexicon, LM)")] = None,
) -> None:
    """WER, CER, utterance count and real-time factor of a model on a dataset."""
    from .data import load_dataset
    from .models import load_model, read_config
    from .objectives import DecoderConfig, evaluate as run_eval

    model = load_model(model_dir)
    if onnx_file is not None:
        from .export import OnnxAcousticModel

        if not onnx_file.is_file():
            raise UserError(f"{onnx_file}: ONNX file not found")
        model = OnnxAcousticModel(onnx_file, model.cfg.n_mels)  # session(): one line for a bad file
    cfg = DecoderConfig.from_dict(read_config(model_dir).get("decoder") or {"kind": "greedy"})
    if decoder:
        cfg = cfg.with_(kind=decoder)  # validated in DecoderConfig.__post_init__
    utts, report = load_dataset(manifest, strict=strict)
    if report.n_skipped:
        err.print(f"[yellow]warning:[/] {report.summary()}", soft_wrap=True)
    if not utts:
        raise UserError(f"{manifest}: no usable utterances to evaluate ({report.n_skipped} skipped)")
    with err.status(f"decoding {len(utts)} utterances ({cfg.kind})"):
        result = run_eval(model, model_dir, utts, cfg, workers)
    result["skipped"] = report.n_skipped
    if as_json:
        print(json.dumps({k: result[k] for k in ("wer", "cer", "utterances", "rtf", "decoder", "skipped")}))
    else:
        out.print(f"WER {result['wer']:.2%}  CER {result['cer']:.2%}  utterances {result['utterances']}  "
                  f"RTF {result['rtf']:.3f}  decoder {result['decoder']}  skipped {report.n_skipped}")


@app.command()
def layers(
    model_dir: Annotated[Path, typer.Option("--model", help="Model folder")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List the compressible layers (Linear, Conv, attention projections) with shapes and sizes."""
    from rich.table import Table

    from .compression import discover_layers
    from .models import load_model

    found = discover_layers(load_model(model_dir))
    if as_json:
        print(json.dumps([{"name": l.name, "kind": l.kind, "shape": list(l.shape), "params": l.params}
                          for l in found]))
        return
    table = Table("layer", "type", "shape", "params")
    for l in found:
        table.add_row(l.name, l.kind, "x".join(map(str, l.shape)), f"{l.params:,}")
    out.print(table)
    out.print(f"{len(found)} layers, {sum(l.params for l in found):,} parameters")


@app.command()
def inspect(
    model_dir: Annotated[Path, typer.Option("--model", help="Model folder (compressed or not)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Deployed bytes per layer in its smallest storage format, and the ratio to fp32."""
    from rich.table import Table

    from .compression import size_report
    from .compression._io import read_fp32_bytes, read_states
    from .models import load_model

    report = size_report(load_model(model_dir), read_states(model_dir), read_fp32_bytes(model_dir))
    if as_json:
        print(json.dumps(report))
        return
    table = Table("layer", "params", "nonzeros", "bits", "rank", "clusters", "format", "bytes")
    for l in report["layers"]:
        table.add_row(l["name"], f"{l['params']:,}", f"{l['nonzeros']:,}", str(l["bits"]), str(l["rank"] or "-"),
                      str(l["clusters"] or "-"), l["format"], f"{l['bytes']:,}")
    out.print(table)
    out.print(f"other tensors (biases, norms): {report['other_bytes']:,} bytes")
    out.print(f"deployed {report['total_bytes']:,} bytes; fp32 {report['fp32_bytes']:,} bytes; "
              f"ratio {report['ratio']:.2f}x")


@app.command()
def compress(
    model_dir: Annotated[Path, typer.Option("--model", help="Uncompressed model folder (the KD teacher)")],
    policy_path: Annotated[Path, typer.Option("--policy", help="Policy YAML or JSON, or the name of a shipped "
                                                               "example (int8, int4, combined, ...)")],
    out_dir: Annotated[Path, typer.Option("--out", help="Compressed model folder to write")],
    finetune_steps: Annotated[Optional[int], typer.Option(help="KD recovery steps (default: the policy's)")] = None,
    kd_temperature: Annotated[Optional[float], typer.Option(help="KD temperature T")] = None,
    kd_alpha: Annotated[Optional[float], typer.Option(help="KD weight alpha (1 - alpha goes to CTC)")] = None,
    corpus_dir: Annotated[Optional[Path], typer.Option("--corpus", help="Corpus with train.jsonl, for KD")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing non-empty --out folder that asrcompress did not write")] = False,
) -> None:
    """Apply a per-layer policy, recover with distillation, and write a compressed model folder."""
    from ._outputs import output_folder
    from ._shipped import resolve
    from .compression import Policy
    from .compression._run import compress_folder, distill_config

    policy_path = resolve("policy", policy_path)
    policy = Policy.load(policy_path)
    kd = distill_config(policy, finetune_steps, kd_temperature, kd_alpha)
    inputs = {"model": model_dir, "policy": policy_path, "corpus": corpus_dir}
    with output_folder(out_dir, inputs, overwrite=overwrite, command=_command_line(), kind="model") as stage, Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task("distillation steps", total=kd.steps or None)
        summary = compress_folder(model_dir, policy, stage, kd, corpus_dir, _command_line(),
                                  log=progress.console.print,
                                  on_step=lambda s, t: progress.update(task, completed=s, total=t))
    out.print(f"wrote {out_dir}: deployed {summary['total_bytes']:,} bytes, {summary['ratio']:.2f}x smaller than fp32"
              + (f"; {summary['distill']['steps']} KD steps in {summary['distill']['seconds']} s"
                 if summary["distill"]["steps"] else ""))


def _onnx_path(model: Path, tmp: Path) -> Path:
    """An ONNX file as given, or a model folder exported into `tmp`."""
    if model.suffix == ".onnx":
        if not model.is_file():
            raise UserError(f"{model}: ONNX file not found")
        from .export import session

        session(model)  # a one-line error for a file ONNX Runtime cannot load
        return model
    from .compression._io import read_states
    from .export import export_onnx
    from .models import load_model

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
) -> None:
    """Export to ONNX (dynamic time axis) with int8 and 4-bit kernels for quantized layers."""
    from ._outputs import refuse_overlap
    from .compression._io import read_states
    from .export import calibration_features, export_onnx
    from .models import load_model, read_config

    refuse_overlap(out_file, {"model": model_dir, "calibration set": calibration})
    if accuracy_level not in (0, 1, 2, 3, 4):
        raise UserError(f"--accuracy-level {accuracy_level} is not one of 0, 1, 2, 3, 4")
    if calibration_utterances < 1:
        raise UserError(f"--calibration-utterances {calibration_utterances} must be at least 1")
    model = load_model(model_dir)
    feats = None
    if calibration is not None:
        from .data import load_dataset
        from .data._manifest import read_audio

        utts, _ = load_dataset(calibration)
        if not utts:
            raise UserError(f"{calibration}: no usable utterances for calibration")
        with err.status(f"computing features of {min(calibration_utterances, len(utts))} calibration utterances"):
            feats = calibration_features([read_audio(u.audio_filepath) for u in utts[:calibration_utterances]],
                                         model.cfg.n_mels)
    with err.status("exporting"):
        report = export_onnx(model, read_states(model_dir), out_file, accuracy_level, calibration=feats)
    kernels: dict[str, int] = {}
    for k in report["layers"].values():
        kernels[k] = kernels.get(k, 0) + 1
    report["kernels"] = kernels
    report["n_mels"] = read_config(model_dir)["model"]["n_mels"]
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

    from ._shipped import resolve
    from .hardware import latency_report, load_profile

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

    from .hardware._write import write_profile

    if not 1 <= threads <= (os.cpu_count() or 1):
        raise UserError(f"--threads {threads} must be between 1 and this machine's {os.cpu_count()} CPUs")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task("micro-benchmarks", total=None)
        doc = write_profile(out_file, name, threads, quick, reference,
                            progress=lambda d, t: progress.update(task, completed=d, total=t))
    out.print(f"wrote {out_file}: fp32 {doc['fp32_gflops']} GFLOP/s, int8 {doc['int8_gops']} GOP/s, "
              f"int4 {doc['int4_gops']} GOP/s, factor {doc['calibration_factor']}")


# --- search, front, ui, export -------------------------------------------------------------

def _search_cfg(space: Optional[Path], model: Optional[Path], corpus: Optional[Path], trials: Optional[int],
                sampler: Optional[str], storage: Optional[str], study: Optional[str], workers: int,
                tracking_uri: Optional[str], seed: int, dev_utterances: Optional[int], kd_utterances: Optional[int],
                profiles: Optional[Path], trial_timeout_s: Optional[float] = None,
                heartbeat_grace_s: Optional[float] = None) -> dict:
    """The driver's settings. A new study takes defaults for what is not given (the shipped base
    model and profiles); a resumed one keeps its stored settings, and `given` says which of
    them the user named (a named fixed setting that differs is refused)."""
    from ._shipped import base_model, profiles_dir, resolve
    from .search import default_storage
    from .tracking import tracking_uri as resolve_uri

    if trials is not None and trials < 1:
        raise UserError(f"--trials {trials} must be at least 1")
    if workers < 1:
        raise UserError(f"--workers {workers} must be at least 1")
    if space is None and study is None:
        raise UserError("give --space (a new study) or --study (resume one)")
    space = resolve("space", space) if space is not None else None
    name = study or space.stem
    given = {k for k, v in {"space": space, "model": model, "corpus": corpus, "budget": trials, "sampler": sampler,
                            "tracking_uri": tracking_uri, "dev_utterances": dev_utterances,
                            "kd_utterances": kd_utterances, "profiles": profiles, "trial_timeout_s": trial_timeout_s,
                            "heartbeat_grace_s": heartbeat_grace_s}.items() if v is not None}
    return {
        "space": str(space.resolve()) if space else None, "model": str((model or base_model()).resolve()),
        "corpus": str((corpus or Path("data/default")).resolve()), "profiles": str((profiles or profiles_dir()).resolve()),
        "budget": trials or 20, "sampler": sampler or "tpe", "seed": seed,
        "storage": storage or default_storage(name), "study": name, "workers": workers,
        "tracking_uri": resolve_uri(tracking_uri), "workdir": str((Path("mlruns") / "studies" / name).resolve()),
        "dev_utterances": dev_utterances or 100, "kd_utterances": kd_utterances or 2000,
        "trial_timeout_s": trial_timeout_s, "heartbeat_grace_s": heartbeat_grace_s or 120.0,
        "threads": 1 if workers > 1 else max(1, (os.cpu_count() or 1)), "given": sorted(given),
    }


def _print_front(rows: list[dict], objectives: list[str]) -> None:
    from rich.table import Table

    table = Table("trial", *objectives, "size", "test WER", "baseline")
    for r in rows:
        v = r["values"]
        cells = [f"{v[o]:.4f}" if o == "wer" else f"{v[o]:.2f}" for o in objectives]
        test = r.get("test", {}).get("test_wer")
        table.add_row(str(r["trial"]), *cells, f"{r['size_ratio']:.2f}x" if r.get("size_ratio") else "-",
                      f"{test:.4f}" if test is not None else "-", r.get("baseline") or "")
    out.print(table)


@app.command()
def search(
    space: Annotated[Optional[Path], typer.Option(
        help="Search space YAML, or the name of a shipped one (quick, conformer_small, grouped_ffn_attention); "
             "a resumed study keeps its own")] = None,
    model: Annotated[Optional[Path], typer.Option(help="Base model folder, the KD teacher (default: the shipped "
                                                       "base model)")] = None,
    corpus: Annotated[Optional[Path], typer.Option(help="Corpus with train/dev/test.jsonl (default: data/default)")] = None,
    trials: Annotated[Optional[int], typer.Option(help="Trial budget of the study (resuming counts finished "
                                                        "trials; default 20)")] = None,
    sampler: Annotated[Optional[str], typer.Option(help="tpe (default), nsga2, gp or random")] = None,
    storage: Annotated[Optional[str], typer.Option(help="journal:PATH or postgresql://...; default: a journal "
                                                       "file under mlruns/optuna/")] = None,
    study: Annotated[Optional[str], typer.Option(help="Study name (default: the space's file name)")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes on this machine")] = 1,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow URI (default: $MLFLOW_TRACKING_URI or "
                                                            "sqlite:///mlruns/mlflow.db)")] = None,
    seed: Annotated[int, typer.Option(help="Sampler seed")] = 0,
    dev_utterances: Annotated[Optional[int], typer.Option(help="Dev utterances each trial is scored on "
                                                               "(default 100)")] = None,
    kd_utterances: Annotated[Optional[int], typer.Option(help="Training utterances distillation draws from "
                                                              "(default 2000)")] = None,
    profiles: Annotated[Optional[Path], typer.Option(help="Folder of hardware profiles (default: the shipped "
                                                          "ones)")] = None,
    backend: Annotated[str, typer.Option(help="optuna (processes on this machine) or ray (a Ray cluster)")] = "optuna",
    address: Annotated[Optional[str], typer.Option(help="Ray cluster: auto or HOST:PORT (default: start one here)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
    trial_timeout: Annotated[Optional[float], typer.Option(
        help="Minutes a trial may run; past it the trial is recorded as failed and the study goes on")] = None,
    heartbeat_grace: Annotated[Optional[float], typer.Option(
        help="Seconds without a heartbeat after which a running trial counts as lost (its worker died, on any "
             "host) and is re-queued (default 120)")] = None,
) -> None:
    """Multi-objective search of per-layer policies; re-running the same command resumes the study.
    The study keeps its settings (model, corpus, space, profiles, scoring); workers read them."""
    from .search import run_search
    from .search._run import dumps

    if backend not in ("optuna", "ray"):
        raise UserError(f"--backend {backend!r} is not one of optuna, ray")
    if trial_timeout is not None and not trial_timeout > 0:
        raise UserError(f"--trial-timeout {trial_timeout} must be a positive number of minutes")
    if heartbeat_grace is not None and not heartbeat_grace >= 2:
        raise UserError(f"--heartbeat-grace {heartbeat_grace} must be at least 2 seconds")
    cfg = _search_cfg(space, model, corpus, trials, sampler, storage, study, workers, tracking_uri, seed,
                      dev_utterances, kd_utterances, profiles, trial_timeout * 60 if trial_timeout else None,
                      heartbeat_grace)
    if backend == "ray":
        import time as _time

        from .search._ray import run_ray

        t0 = _time.perf_counter()
        cfg["threads"] = 1
        summary = run_ray(cfg, address)
        summary["wall_seconds"] = round(_time.perf_counter() - t0, 1)
    else:
        with err.status(f"searching {cfg['study']} ({workers} worker(s))"):
            summary = run_search(cfg)
    if as_json:
        print(dumps(summary))
        return
    out.print(f"study {summary['study']}: {summary['trials']} in {summary['wall_seconds']} s; "
              f"hypervolume {summary['hypervolume']:.4g}; {summary['saved_steps']} KD steps saved by early stopping")
    from .search import load_study

    _print_front(summary["front"], load_study(cfg["storage"], cfg["study"]).user_attrs["objectives"])


@app.command()
def worker(
    study: Annotated[str, typer.Option(help="Study name")],
    storage: Annotated[str, typer.Option(help="The study's storage URL (journal:PATH on a shared disk, or PostgreSQL)")],
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow URI (default: the one the study was "
                                                            "started with)")] = None,
) -> None:
    """Join a running study (from this or another machine) and run trials until its budget is used.
    Everything that scores a trial (model, corpus, space, profiles, utterance counts) comes from
    the study itself."""
    from .search import load_study, work

    load_study(storage, study)  # one line for a study that is not there
    cfg = {"study": study, "storage": storage, "tracking_uri": tracking_uri, "workers": 2, "threads": 1,
           "seed": None}  # a joining worker must not replay another worker's seeded draws
    print(json.dumps(work(cfg)))


@app.command()
def front(
    study: Annotated[str, typer.Option(help="Study name")],
    storage: Annotated[Optional[str], typer.Option(help="Storage URL (default: the journal under mlruns/)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list")] = False,
) -> None:
    """The study's Pareto front (feasible trials only), best WER first."""
    from .search import default_storage, front_rows, load_study

    s = load_study(storage or default_storage(study), study)
    rows = front_rows(s)
    if as_json:
        print(json.dumps([{k: r[k] for k in ("trial", "values", "policy")} | ({"test": r["test"]} if "test" in r else {})
                          for r in rows]))
        return
    _print_front(rows, s.user_attrs["objectives"])


@app.command()
def ui(
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow URI")] = None,
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1 keeps it private)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 5000,
) -> None:
    """Start the MLflow UI on 127.0.0.1 and print how to filter the Pareto front."""
    import subprocess
    import sys

    from .tracking import ARTIFACTS, tracking_uri as resolve_uri

    uri = resolve_uri(tracking_uri)
    out.print(f"MLflow UI: http://{host}:{port}  (filter runs with: tags.pareto = 'true')")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    if uri.startswith("sqlite:"):
        cmd += ["--default-artifact-root", str(Path(ARTIFACTS).resolve())]
    raise typer.Exit(subprocess.call(cmd))


@app.command("export")
def export_cmd(
    study: Annotated[str, typer.Option(help="Study name")],
    out_dir: Annotated[Path, typer.Option("--out", help="Bundle folder to write")],
    trial: Annotated[Optional[int], typer.Option(help="Trial number")] = None,
    pick: Annotated[Optional[str], typer.Option(help='e.g. "min latency@host where wer <= 0.12", or "knee"')] = None,
    storage: Annotated[Optional[str], typer.Option(help="Storage URL (default: the journal under mlruns/)")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow URI")] = None,
    register: Annotated[bool, typer.Option(help="Register in the MLflow Model Registry with alias 'candidate'")] = True,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing non-empty --out folder that asrcompress did not write")] = False,
) -> None:
    """Write a deployment bundle for one trial, re-measured on its ONNX export."""
    from .search import default_storage, load_study
    from .search._export import export_trial

    if (trial is None) == (pick is None):
        raise UserError("give exactly one of --trial N or --pick \"...\"")
    s = load_study(storage or default_storage(study), study)
    card = export_trial(s, trial, pick, out_dir, tracking_uri, register, overwrite, _command_line())
    print(json.dumps(card, indent=2))


@app.command()
def verify(bundle: Annotated[Path, typer.Option(help="Export bundle folder")]) -> None:
    """Check every file of an export bundle against its SHA256SUMS (and that none was added)."""
    from .export._bundle import SUMS, verify_bundle

    if not bundle.is_dir():
        raise UserError(f"{bundle}: bundle folder not found")
    verify_bundle(bundle)
    n = len((bundle / SUMS).read_text().splitlines())
    out.print(f"{bundle}: {n} files match {SUMS}")


@app.command()
def bench(
    budget_minutes: Annotated[float, typer.Option(help="CPU-minutes for each search arm (search, random)")] = 30.0,
    out: Annotated[Path, typer.Option(help="Stem of the .md/.json/.html/.png outputs")] = Path("docs/benchmarks"),
    quick: Annotated[bool, typer.Option("--quick", help="A small run (small corpus, short budgets): <= 20 min")] = False,
    space: Annotated[Path, typer.Option(help="Search space of the search and random arms (a file, or a shipped "
                                             "space's name)")] = Path("quick"),
    model: Annotated[Optional[Path], typer.Option(help="Base model folder (default: the shipped one)")] = None,
    corpus: Annotated[Optional[Path], typer.Option(help="Corpus (default: the built-in benchmark, synthesised "
                                                        "if missing; --quick: a small one)")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes of each search arm")] = 2,
    peers: Annotated[bool, typer.Option(help="Run INC and Olive from .venv-peers (scripts/setup_peers.sh)")] = True,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow URI")] = None,
    workdir: Annotated[Path, typer.Option(help="Models, logs and journals of the run")] = Path("mlruns/bench"),
    test_utterances: Annotated[Optional[int], typer.Option(help="Score on the first N test utterances "
                                                                "(default: all; --quick: 100)")] = None,
) -> None:
    """Search vs random search vs uniform policies vs peer tools, scored side by side in one run."""
    from ._outputs import output_folder
    from ._shipped import base_model, resolve
    from .search._bench import BenchOptions, run_bench
    from .tracking import tracking_uri as resolve_uri

    space, model = resolve("space", space), model or base_model()

    if budget_minutes <= 0:
        raise UserError(f"--budget-minutes {budget_minutes} must be positive")
    if workers < 1:
        raise UserError(f"--workers {workers} must be at least 1")
    if corpus is None:
        corpus = Path("data/bench-quick") if quick else Path("data/default")
        if not (corpus / "test.jsonl").is_file():
            from .data import build_corpus

            err.print(f"bench: synthesising the built-in benchmark corpus into {corpus}")
            with output_folder(corpus, {}, command=_command_line(), kind="corpus", resume=True) as stage:
                build_corpus(stage, seed=2026 if quick else 0, size="small" if quick else "default")
    for name in ("train", "dev", "test"):
        if not (corpus / f"{name}.jsonl").is_file():
            raise UserError(f"{corpus / (name + '.jsonl')}: not found; build one with `asrcompress corpus`")
    if quick and out == Path("docs/benchmarks"):
        out = workdir / "quick" / "benchmarks"
    opts = BenchOptions(model=model, corpus=corpus, space=space, budget_minutes=min(budget_minutes, 4.0) if quick
                        else budget_minutes, workers=workers, out=out, workdir=workdir / ("quick" if quick else "full"),
                        tracking_uri=resolve_uri(tracking_uri), peers=peers, quick=quick,
                        dev_utterances=40 if quick else 100, kd_utterances=300 if quick else 2000,
                        test_utterances=test_utterances or (100 if quick else None), command=_command_line())
    doc = run_bench(opts, log=err.print)
    for name, r in doc["arms"].items():
        best_s = f"{r['best_size_ratio']:.2f}x" if r["best_size_ratio"] else "-"
        best_l = f"{r['best_speedup']:.2f}x" if r["best_speedup"] else "-"
        out_line = f"{name:24s} HV {r['hypervolume']:.4f}  size {best_s:>7s}  speed-up {best_l:>6s}  " \
                   f"{r['cpu_minutes']:6.1f} CPU-min" + (f"  error: {r['error']}" if r["error"] else "")
        print(out_line)
    print(f"targets: {json.dumps(doc['targets'])}")
    print(f"wrote {out.with_suffix('.md')}, {out.with_suffix('.json')}; MLflow run {doc['mlflow_run']}")


def main() -> None:
    try:
        app(standalone_mode=True)
    except UserError as e:
        err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted; completed work is kept")
        sys.exit(130)


if __name__ == "__main__":
    main()
