"""Commands that look at and compress a model: layers, inspect, compress."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import UserError
from ._app import app, command_line, err, out, torch_device


@app.command()
def layers(
    model_dir: Annotated[Path, typer.Option("--model", help="Model folder")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List the compressible layers (Linear, Conv, attention projections) with shapes and sizes."""
    from rich.table import Table

    from ..compression import discover_layers
    from ..models import load_model

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

    from ..compression import size_report
    from ..compression import read_fp32_bytes, read_states
    from ..models import load_model

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
    out_dir: Annotated[Path, typer.Option("--out", help="Compressed model folder to write")],
    model_dir: Annotated[Optional[Path], typer.Option(
        "--model", help="Uncompressed model folder, the KD teacher (default: the shipped base model)")] = None,
    policy_path: Annotated[Optional[Path], typer.Option("--policy", help="Policy YAML or JSON, or the name of a "
                                                                         "shipped example (int8, int4, combined, ...)")] = None,
    recipe: Annotated[Optional[Path], typer.Option(
        help="A point's recipe (docs/benchmarks/points/NAME.yaml, written by the bench): rebuilds that model from "
             "the base model and the corpus it names (synthesised under data/ if absent), instead of --policy")] = None,
    finetune_steps: Annotated[Optional[int], typer.Option(help="KD recovery steps (default: the policy's)")] = None,
    kd_temperature: Annotated[Optional[float], typer.Option(help="KD temperature T")] = None,
    kd_alpha: Annotated[Optional[float], typer.Option(help="KD weight alpha (1 - alpha goes to CTC)")] = None,
    corpus_dir: Annotated[Optional[Path], typer.Option("--corpus", help="Corpus with train.jsonl, for KD")] = None,
    dev_utterances: Annotated[int, typer.Option(
        help="Dev utterances (the corpus's dev.jsonl) that decide whether the distilled model or the one "
             "before distillation is kept, as in a search trial; 0: keep the distilled one")] = 100,
    kd_utterances: Annotated[int, typer.Option(help="Training utterances held in memory for distillation")] = 4000,
    seed: Annotated[int, typer.Option(help="Seed of the distillation batch order (a trial's is its number)")] = 0,
    device: Annotated[str, typer.Option(
        help="Where distillation runs: auto (a GPU when there is one), cpu or cuda; the model is "
             "written from the CPU either way")] = "cpu",
    threads: Annotated[Optional[int], typer.Option(
        help="Torch threads (default: every core, as a one-worker search uses; results depend on it)")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing non-empty --out folder that asrcompress did not write")] = False,
) -> None:
    """Apply a per-layer policy, recover with distillation, and write a compressed model folder
    (or, with --recipe, rebuild a bench point from its recipe)."""
    from .._outputs import output_folder
    from .._shipped import base_model, resolve
    from ..compression import Policy, Recovery, Watch
    from ..compression import compress_folder, distill_config
    from ..objectives import dev_scorer

    import os

    import torch

    torch.set_num_threads(threads or max(1, os.cpu_count() or 1))
    device = torch_device("--device", device)
    if (policy_path is None) == (recipe is None):
        raise UserError("give --policy (a policy to apply) or --recipe (a point to rebuild), one of them")
    if recipe is not None:
        given = {"--finetune-steps": finetune_steps, "--kd-temperature": kd_temperature, "--kd-alpha": kd_alpha}
        for flag in (f for f, v in given.items() if v is not None):
            raise UserError(f"{flag} applies to --policy only: a recipe keeps its own recovery")
        _compress_recipe(recipe, model_dir, corpus_dir, out_dir, overwrite)
        return
    model_dir = model_dir or base_model()
    policy_path = resolve("policy", policy_path)
    policy = Policy.load(policy_path)
    kd = distill_config(policy, finetune_steps, kd_temperature, kd_alpha)
    inputs = {"model": model_dir, "policy": policy_path, "corpus": corpus_dir}
    with output_folder(out_dir, inputs, overwrite=overwrite, command=command_line(), kind="model") as stage, Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task("distillation steps", total=kd.steps or None)
        score = dev_scorer(model_dir, corpus_dir, dev_utterances) if kd.steps and corpus_dir else None
        watch = Watch(lambda done, total: progress.update(task, completed=done, total=total), score)
        summary = compress_folder(model_dir, policy, stage, kd, corpus_dir, command_line(), kd_utterances,
                                  log=progress.console.print, monitor=watch, recovery=Recovery(seed=seed, device=device))
    out.print(f"wrote {out_dir}: deployed {summary['total_bytes']:,} bytes, {summary['ratio']:.2f}x smaller than fp32"
              + (f"; {summary['distill']['steps']} KD steps in {summary['distill']['seconds']} s"
                 if summary["distill"]["steps"] else "")
              + ("; distillation raised dev WER, so the model before it was kept" if summary["reverted"] else ""))


def _recipe_corpus(recipe: dict, source: Path) -> Path:
    """The recipe's corpus: where it was, or data/default, if their manifests match; else
    synthesised from the recipe's settings into data/recipe-SIZE-sSEED-gGEN (resumable)."""
    from ..data import build_corpus
    from ..search import corpus_fingerprint

    c = recipe["corpus"]
    for folder in (Path(c.get("path", "")), Path("data/default")):
        if (folder / "dev.jsonl").is_file() and corpus_fingerprint(folder) == c["fingerprint"]:
            return folder
    if not c.get("size") or c.get("seed") is None:
        raise UserError(f"{source}: the recipe's corpus ({c.get('path')}) is not here and was not synthesised by "
                        "asrcompress; give it with --corpus")
    folder = Path("data") / f"recipe-{c['size']}-s{c['seed']}-g{c.get('generator', 1)}"
    err.print(f"synthesising the recipe's corpus into {folder} (resumable; minutes for the default size)")
    build_corpus(folder, seed=c["seed"], size=c["size"], generator=c.get("generator", 1), counts=c.get("counts"))
    return folder


def _compress_recipe(source: Path, model_dir: Optional[Path], corpus_dir: Optional[Path], out_dir: Path,
                     overwrite: bool) -> None:
    """`compress --recipe`: one finalist rebuilt from its base model and corpus (search.rebuild_recipe)."""
    from .._outputs import output_folder
    from .._shipped import base_model
    from ..compression import size_report, write_compression
    from ..models import load_model, read_config, save_model
    from ..search import check_recipe_inputs, load_recipe, rebuild_recipe

    recipe = load_recipe(source)
    model_dir = model_dir or base_model()
    corpus_dir = corpus_dir or _recipe_corpus(recipe, source)
    check_recipe_inputs(recipe, source, model_dir, corpus_dir)
    with output_folder(out_dir, {"model": model_dir, "recipe": source, "corpus": corpus_dir}, overwrite=overwrite,
                       command=command_line(), kind="model") as stage:
        base = load_model(model_dir)
        model, states, policy = rebuild_recipe(recipe, base, corpus_dir, log=err.print)
        save_model(model, stage, decoder=read_config(model_dir).get("decoder"))
        report = size_report(model, states, fp32_bytes=size_report(base)["total_bytes"])
        write_compression(stage, model_dir, policy, states, {
            "recipe": {"file": str(source), "name": recipe.get("name"), "measured": recipe.get("measured", {})},
            "distill": {"steps": recipe["recovery"]["best_steps"], "lr": recipe["recovery"]["lr"],
                        "seed": recipe["recovery"]["seed"]},
            "command": command_line(), "total_bytes": report["total_bytes"], "fp32_bytes": report["fp32_bytes"],
            "ratio": report["ratio"]})
    out.print(f"wrote {out_dir}: rebuilt {recipe.get('name', source.stem)} from its recipe, "
              f"{recipe['recovery']['best_steps']} KD steps; deployed {report['total_bytes']:,} bytes, "
              f"{report['ratio']:.2f}x smaller than fp32")
