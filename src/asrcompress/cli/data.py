"""Commands for data and base models: corpus, train, finalize, evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import UserError
from ._app import app, command_line, err, out, torch_device


@app.command()
def corpus(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write audio and manifests into")],
    seed: Annotated[int, typer.Option(help="Seed for sentences, voices and augmentation")] = 0,
    size: Annotated[str, typer.Option(help="small (tests, demos) or default (>= 10k training utterances)")] = "default",
    workers: Annotated[int, typer.Option(help="Synthesis processes; 0 = all cores")] = 0,
    generator: Annotated[Optional[int], typer.Option(
        help="1: the shipped model's corpus (1,499 words; espeak-ng + flite). 2: 7,000 words with held-out "
             "test words and templates, espeak 1.48 too, more perturbation, and cross-synthesiser splits "
             "(dev_flite, test_flite, test_klatt: synthesisers never in train)")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing non-empty --out folder that asrcompress did not write")] = False,
) -> None:
    """Synthesise the built-in benchmark corpus (espeak-ng + flite) with train/dev/test manifests.

    Interrupted, it resumes: running the same command again keeps the splits already made."""
    from .._outputs import output_folder
    from ..data import DEFAULT_GENERATOR, GENERATORS, SIZES, build_corpus

    if size not in SIZES:
        raise UserError(f"--size {size!r} is not one of {', '.join(SIZES)}")
    generator = DEFAULT_GENERATOR if generator is None else generator
    if generator not in GENERATORS:
        raise UserError(f"--generator {generator} is not one of {', '.join(map(str, GENERATORS))}")
    with output_folder(out_dir, {}, overwrite=overwrite, command=command_line(), kind="corpus",
                       resume=True) as stage, Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err) as progress:
        tasks: dict[str, int] = {}

        def update(split: str, done: int, total: int) -> None:
            if split not in tasks:
                tasks[split] = progress.add_task(f"synthesising {split}", total=total)
            progress.update(tasks[split], completed=done)

        summary = build_corpus(stage, seed=seed, size=size, workers=workers or None, progress=update,
                               generator=generator)
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
    warp: Annotated[float, typer.Option(help="Vocal-tract-length perturbation: mel axis stretched by a random "
                                              "factor in [1-warp, 1+warp] per utterance (0: off; 0.1 is typical)")] = 0.0,
    masks: Annotated[int, typer.Option(help="SpecAugment frequency and time masks per utterance")] = 2,
    finalize_after: Annotated[bool, typer.Option("--finalize/--no-finalize",
                                                 help="Build LM + lexicon, tune decoder, score, write card")] = True,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing non-empty --out folder that asrcompress did not write")] = False,
) -> None:
    """Train the Conformer-CTC base model from scratch (checkpoints and resumes).

    The model folder appears at --out only when training (and finalize) is complete."""
    import torch

    from .._outputs import is_ours, output_folder, real
    from ..models import TrainConfig

    dev = torch.device(torch_device("--device", device))
    for name in ("train", "dev"):
        if not (corpus_dir / f"{name}.jsonl").is_file():
            raise UserError(f"{corpus_dir / (name + '.jsonl')}: not found; build one with `asrcompress corpus`")
    if not 0.0 <= warp < 0.5:
        raise UserError(f"--warp {warp} is outside [0, 0.5)")
    if masks < 0:
        raise UserError(f"--masks {masks} must be at least 0")
    cfg = TrainConfig(epochs=epochs, max_minutes=max_minutes, batch_seconds=batch_seconds, workers=workers,
                      warp=warp, masks=masks)
    # Unfinished training lives in a resumable hidden sibling of --out; going on from a finished
    # model of ours (more epochs) starts from a copy of it.
    with output_folder(out_dir, {"corpus": corpus_dir}, overwrite=overwrite, command=command_line(), kind="model",
                       resume=True, start_from=real(out_dir) if is_ours(out_dir) else None) as stage:
        _train_into(stage, corpus_dir, cfg, dev, finalize_after)


def _train_into(out_dir: Path, corpus_dir: Path, cfg, dev, finalize_after: bool) -> None:
    import torch

    from ..models import ModelConfig
    from ..models import finalize
    from ..models import train as run_train

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task("training steps", total=None)

        def on_step(step: int, total: int) -> None:
            progress.update(task, completed=step, total=total)

        summary = run_train(corpus_dir, out_dir, ModelConfig(), cfg, dev, log=progress.console.print,
                            on_step=on_step)
    summary["hardware"] = torch.cuda.get_device_name() if dev.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    summary["command"] = command_line()
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not summary["finished"]:
        raise typer.Exit(3)
    if finalize_after:
        card = finalize(out_dir, corpus_dir, summary, command_line(), log=err.print)
        out.print(json.dumps({k: card[k] for k in ("parameters", "wer", "cer", "greedy_wer")}, indent=2))


@app.command()
def finalize(
    model_dir: Annotated[Path, typer.Option("--model", help="Trained model folder")],
    corpus_dir: Annotated[Path, typer.Option("--corpus", help="The corpus it was trained on")],
    out_dir: Annotated[Optional[Path], typer.Option(
        "--out", help="Write the finalized model here (default: update --model, if asrcompress wrote it)")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing non-empty --out folder that asrcompress did not write")] = False,
    lm_text: Annotated[Optional[Path], typer.Option(
        "--lm-text", help="Sentences for the LMs and lexicon: a text file (one a line) or a JSONL manifest "
        "(default: the corpus's train.jsonl)")] = None,
) -> None:
    """Build the LM and lexicon from training text, tune the decoder on dev, score dev/test, write the card.

    A Hugging Face CTC folder is never written into: with --out it becomes one of our model
    folders there, holding the model, its decoder files and its card."""
    from .._json import read_json
    from .._outputs import output_folder
    from ..models import is_hf_folder, load_model, save_model
    from ..models import finalize as run_finalize

    model = load_model(model_dir)  # one line for a folder that is no model
    hf = is_hf_folder(model_dir)
    if hf and out_dir is None:
        raise UserError(f"{model_dir}: a Hugging Face folder is not written into; give --out DIR for the "
                        "finalized model")
    inputs = {"corpus": corpus_dir, "lm_text": lm_text} | ({"model": model_dir} if out_dir is not None else {})
    with output_folder(out_dir or model_dir, inputs, overwrite=overwrite, command=command_line(), kind="model",
                       start_from=None if hf else model_dir, flag="--out" if out_dir is not None else "--model") as stage:
        if hf:
            save_model(model, stage)
        summary_path = stage / "train_summary.json"
        summary = read_json(summary_path) if summary_path.exists() else {}
        card = run_finalize(stage, corpus_dir, summary, summary.get("command", command_line()), log=err.print,
                            lm_text=lm_text)
    out.print(json.dumps({k: card[k] for k in ("parameters", "wer", "cer", "greedy_wer")}, indent=2))


@app.command()
def evaluate(
    model_dir: Annotated[Path, typer.Option("--model", help="Model folder")],
    manifest: Annotated[Path, typer.Option(help="JSONL manifest or LibriSpeech folder")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    decoder: Annotated[Optional[str], typer.Option(help="greedy, beam_char (lexicon-free, character LM) or beam_lm (lexicon, word LM); default: the model's setting")] = None,
    strict: Annotated[bool, typer.Option(help="Fail on the first bad entry instead of skipping it")] = False,
    workers: Annotated[int, typer.Option(help="Decoding processes; 0 = all cores")] = 0,
    onnx_file: Annotated[Optional[Path], typer.Option(
        "--onnx", help="Run this ONNX export of the model instead (the folder gives the decoder, lexicon, LM)")] = None,
) -> None:
    """WER, CER, utterance count and real-time factor of a model on a dataset."""
    from ..data import load_dataset
    from ..models import features_of, load_model, read_config
    from ..objectives import DecoderConfig, evaluate as run_eval

    model = load_model(model_dir)
    if onnx_file is not None:
        from ..export import OnnxAcousticModel

        if not onnx_file.is_file():
            raise UserError(f"{onnx_file}: ONNX file not found")
        model = OnnxAcousticModel(onnx_file, features_of(model))  # session(): one line for a bad file
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
