"""Search commands: search, worker, front, ui, dashboard, export."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UserError
from ._app import app, command_line, err, out, torch_device


def _search_cfg(space: Optional[Path], model: Optional[Path], corpus: Optional[Path], trials: Optional[int],
                sampler: Optional[str], storage: Optional[str], study: Optional[str], workers: int,
                tracking_uri: Optional[str], seed: int, dev_utterances: Optional[int], kd_utterances: Optional[int],
                profiles: Optional[Path], trial_timeout_s: Optional[float] = None,
                heartbeat_grace_s: Optional[float] = None) -> dict:
    """The CLI's arguments as the search driver's settings (`search.driver_config`)."""
    from ..search import driver_config

    return driver_config(space=space, model=model, corpus=corpus, trials=trials, sampler=sampler, storage=storage,
                         study=study, workers=workers, tracking_uri=tracking_uri, seed=seed,
                         dev_utterances=dev_utterances, kd_utterances=kd_utterances, profiles=profiles,
                         trial_timeout_s=trial_timeout_s, heartbeat_grace_s=heartbeat_grace_s)


def _print_front(rows: list[dict], objectives: list[str]) -> None:
    from rich.table import Table

    from ..objectives import digits

    table = Table("trial", *objectives, "size", "test WER", "baseline")
    for r in rows:
        v = r["values"]
        cells = [f"{v[o]:.{digits(o)}f}" for o in objectives]
        test = r.get("test", {}).get("test_wer")
        table.add_row(str(r["trial"]), *cells, f"{r['size_ratio']:.2f}x" if r.get("size_ratio") else "-",
                      f"{test:.4f}" if test is not None else "-", r.get("baseline") or "")
    out.print(table)


@app.command()
def search(
    space: Annotated[Optional[Path], typer.Option(
        help="Search space YAML, or the name of a shipped one (quick, levers, conformer_small, grouped_ffn_attention); "
             "a resumed study keeps its own")] = None,
    model: Annotated[Optional[Path], typer.Option(help="Base model folder, the KD teacher (default: the shipped "
                                                       "base model)")] = None,
    corpus: Annotated[Optional[Path], typer.Option(help="Corpus with train/dev/test.jsonl (default: data/default)")] = None,
    trials: Annotated[Optional[int], typer.Option(help="Trial budget of the study (resuming counts finished "
                                                        "trials; default 20)")] = None,
    sampler: Annotated[Optional[str], typer.Option(
        help="one-stage: tpe (default), nsga2, gp or random; staged: the surrogate study's proposals, nsga2 "
             "(default, seeded with knapsack picks) or random (for comparison)")] = None,
    storage: Annotated[Optional[str], typer.Option(help="journal:PATH or postgresql://...; default: a journal "
                                                       "file under mlruns/optuna/")] = None,
    study: Annotated[Optional[str], typer.Option(help="Study name (default: the space's file name)")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes on this machine")] = 1,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow URI (default: $MLFLOW_TRACKING_URI or "
                                                            "sqlite:///mlruns/mlflow.db)")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Sampler seed (default 0; a resumed staged study keeps "
                                                     "its own)")] = None,
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
    strategy: Annotated[str, typer.Option(
        help="staged: sensitivity scan, surrogate study, candidates scored without recovery, finalists "
             "recovered by successive halving, timed and reported on test; one-stage: every trial sampled by "
             "Optuna and distilled (--trials, --workers, --backend)")] = "staged",
    proposals: Annotated[Optional[int], typer.Option(help="staged: surrogate policies scored (default 2000)")] = None,
    candidates: Annotated[Optional[int], typer.Option(help="staged: most candidates scored in ONNX (default 12)")
                          ] = None,
    rungs: Annotated[Optional[str], typer.Option(help="staged: distillation steps done in all by each rung's end, "
                                                      "comma-separated (default 100,300,900)")] = None,
    device: Annotated[str, typer.Option(
        help="Where distillation runs: cpu, cuda or auto (a GPU when there is one); scoring, export and "
             "timing stay on the CPU. Not kept with the study: each run and worker names its own")] = "cpu",
) -> None:
    """Search per-layer policies; re-running the same command resumes the study.

    The study keeps its settings (model, corpus, space, profiles, scoring); workers read them."""
    from ..search import run_search
    from ..search import dumps

    if strategy not in ("staged", "one-stage"):
        raise UserError(f"--strategy {strategy!r} is not one of staged, one-stage")
    # On Ray the trials run on the cluster's nodes: a GPU there is Ray's to find, not this machine's.
    device = device if backend == "ray" and device == "cuda" else torch_device("--device", device)
    if strategy == "staged":
        _refuse_one_stage_flags(trials, workers, backend, address, trial_timeout, heartbeat_grace)
        cfg = _search_cfg(space, model, corpus, None, None, storage, study, 1, tracking_uri, seed or 0,
                          dev_utterances, kd_utterances, profiles)
        cfg["device"] = device
        summary = _staged(cfg, proposals, candidates, rungs, sampler, seed is not None)
        if as_json:
            print(dumps(summary))
            return
        _print_staged(summary)
        return
    for flag, value in (("--proposals", proposals), ("--candidates", candidates), ("--rungs", rungs)):
        if value is not None:
            raise UserError(f"{flag} applies to --strategy staged only")
    if backend not in ("optuna", "ray"):
        raise UserError(f"--backend {backend!r} is not one of optuna, ray")
    if trial_timeout is not None and not trial_timeout > 0:
        raise UserError(f"--trial-timeout {trial_timeout} must be a positive number of minutes")
    if heartbeat_grace is not None and not heartbeat_grace >= 2:
        raise UserError(f"--heartbeat-grace {heartbeat_grace} must be at least 2 seconds")
    cfg = _search_cfg(space, model, corpus, trials, sampler, storage, study, workers, tracking_uri, seed or 0,
                      dev_utterances, kd_utterances, profiles, trial_timeout * 60 if trial_timeout else None,
                      heartbeat_grace)
    cfg["device"] = device
    from ._live import LiveSearch

    # Stage, trials done, trial-minutes, the front and its hypervolume while the workers run (stderr).
    with LiveSearch(cfg["storage"], cfg["study"], err) as live:
        if backend == "ray":
            import time as _time

            from ..search import run_ray

            t0 = _time.perf_counter()
            cfg["threads"] = 1
            summary = run_ray(cfg, address, live.stage)
            summary["wall_seconds"] = round(_time.perf_counter() - t0, 1)
        else:
            summary = run_search(cfg, live.stage)
    if as_json:
        print(dumps(summary))
        return
    out.print(f"study {summary['study']}: {summary['trials']} in {summary['wall_seconds']} s; "
              f"hypervolume {summary['hypervolume']:.4g}; {summary['saved_steps']} KD steps saved by early stopping")
    from ..search import load_study

    _print_front(summary["front"], load_study(cfg["storage"], cfg["study"]).user_attrs["objectives"])


def _refuse_one_stage_flags(trials, workers, backend, address, trial_timeout, heartbeat_grace) -> None:
    for flag, value, default in (("--trials", trials, None), ("--workers", workers, 1),
                                 ("--backend", backend, "optuna"), ("--address", address, None),
                                 ("--trial-timeout", trial_timeout, None), ("--heartbeat-grace", heartbeat_grace, None)):
        if value != default:
            raise UserError(f"{flag} applies to --strategy one-stage; the staged search's budget is --proposals, "
                            "--candidates and --rungs")


def _staged_options(proposals: Optional[int], candidates: Optional[int], rungs: Optional[str],
                    sampler: Optional[str]) -> dict:
    """The staged options the user named (the rest keep the defaults, or a resumed study's)."""
    given: dict = {}
    if proposals is not None:
        given["proposals"] = proposals
    if candidates is not None:
        given["candidates"] = candidates
    if sampler is not None:
        if sampler not in ("nsga2", "random"):
            raise UserError(f"--sampler {sampler!r} is not one of nsga2, random for the staged search's proposals "
                            "(tpe and gp sample --strategy one-stage's trials)")
        given["sampler"] = sampler
    if rungs is not None:
        try:
            given["rungs"] = tuple(int(r) for r in rungs.split(",") if r.strip())
        except ValueError:
            raise UserError(f"--rungs {rungs!r}: not comma-separated integers") from None
    return given


def _staged(cfg: dict, proposals: Optional[int], candidates: Optional[int], rungs: Optional[str],
            sampler: Optional[str], seed_given: bool = False) -> dict:
    from ..search import StagedOptions, run_staged
    from ._live import StagedProgress

    given = _staged_options(proposals, candidates, rungs, sampler)
    progress = StagedProgress(cfg["study"], err)
    try:
        return run_staged(cfg, StagedOptions(**given), set(given) | ({"seed"} if seed_given else set()), progress)
    finally:
        progress.stop()


def _print_staged(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    base, test = summary["base"], summary["test"]
    p = next(iter(k.split("@", 1)[1] for k in summary["front"][0]["values"] if k.startswith("latency@"))) \
        if summary["front"] else "host"
    timed = "measured_ms@8s" in base
    secs = ", ".join(f"{k} {v:.0f} s" for k, v in summary["seconds"].items()) or "every stage resumed from its file"
    out.print(f"study {summary['study']} (staged): {summary['finalists']} finalists in {summary['wall_seconds']:.0f} s "
              f"({secs}); files in {summary['folder']}", highlight=False, soft_wrap=True)
    table = Table("trial", "name", "dev WER", ".onnx MB", "x smaller (.onnx)",
                  f"ms@{p}" + (" (measured, 8 s)" if timed else " (predicted)"), "x faster", "KD steps",
                  "test WER", "x base [95% CI]", "",
                  title=f"Front (base: dev WER {base['wer']:.4f}, {base['onnx_bytes'] / 1e6:.2f} MB .onnx, "
                        f"{base.get('measured_ms@8s', base.get(f'ms@{p}', 0)):.1f} ms)")
    for r in summary["front"]:
        v, t = r["values"], r.get("test")
        ratio = "-"
        if t:
            lo, hi = t["ratio_ci95"]
            ratio = f"{t['test_wer'] / base['test']['deployed']['wer']:.2f} [{lo:.2f}, {hi:.2f}]" \
                if base["test"]["deployed"]["wer"] else f"[{lo:.2f}, {hi:.2f}]"
        table.add_row(str(r["trial"]), r["name"], f"{v['wer']:.4f}", f"{v['size']:.2f}", f"{r['onnx_ratio']:.2f}",
                      f"{v[f'latency@{p}']:.1f}", f"{r['speedup']:.2f}", str(r["steps"]),
                      f"{t['test_wer']:.4f}" if t else "-", ratio, "knee" if r["knee"] else "")
    # in a log (no terminal) rich would squeeze the table into 80 columns
    (out if out.is_terminal else Console(width=160, highlight=False)).print(table)
    c = summary.get("constraints") or {}
    if c.get("applied") or c.get("not_applied"):
        out.print("front within the space's constraints: " + ", ".join(
            f"{k} <= {v:.4g}" for k, v in c.get("applied", {}).items()) + (
            f" (not applied, not measured by the staged search: {', '.join(c['not_applied'])})"
            if c.get("not_applied") else ""), highlight=False)
    if "utterances" in test:
        out.print(f"test: {test['utterances']} utterances, {test['words']} words, the model's own decoder "
                  f"({test['decoders']['deployed'].get('kind')}); base WER {base['test']['deployed']['wer']:.4f}",
                  highlight=False)
    out.print(f"export the knee: asrcompress export --study {summary['study']} --pick knee --out DIR", highlight=False)


@app.command()
def worker(
    study: Annotated[str, typer.Option(help="Study name")],
    storage: Annotated[str, typer.Option(help="The study's storage URL (journal:PATH on a shared disk, or PostgreSQL)")],
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow URI (default: the one the study was "
                                                            "started with)")] = None,
    device: Annotated[str, typer.Option(help="Where this worker's distillation runs: cpu, cuda or auto")] = "cpu",
) -> None:
    """Join a running study (from this or another machine) and run trials until its budget is used.

    Everything that scores a trial (model, corpus, space, profiles, utterance counts) comes from
    the study itself."""
    from ..search import load_study, work

    device = torch_device("--device", device)
    load_study(storage, study)  # one line for a study that is not there
    cfg = {"study": study, "storage": storage, "tracking_uri": tracking_uri, "workers": 2, "threads": 1,
           "seed": None, "device": device}  # a joining worker must not replay another worker's seeded draws
    print(json.dumps(work(cfg)))


@app.command()
def front(
    study: Annotated[str, typer.Option(help="Study name")],
    storage: Annotated[Optional[str], typer.Option(help="Storage URL (default: the journal under mlruns/)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list")] = False,
) -> None:
    """The study's Pareto front (feasible trials only), best WER first."""
    from ..search import default_storage, front_rows, load_study

    s = load_study(storage or default_storage(study), study)
    rows = front_rows(s)
    if as_json:
        print(json.dumps([{k: r[k] for k in ("trial", "name", "values", "policy", "test") if k in r} for r in rows]))
        return
    _print_front(rows, s.user_attrs["objectives"])


@app.command()
def ui(
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow URI")] = None,
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1 keeps it private)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 5000,
    study: Annotated[Optional[str], typer.Option(help="Print the Pareto-front link of this study only "
                                                      "(default: every study in the store)")] = None,
) -> None:
    """Start the MLflow UI on 127.0.0.1 and print, for each study, a link that opens its Pareto
    front: the front's trials with their objectives as columns, best WER first."""
    import subprocess
    import sys

    from ..tracking import ARTIFACTS, front_views, tracking_uri as resolve_uri

    uri = resolve_uri(tracking_uri)
    views = front_views(uri, study)
    out.print(f"MLflow UI: http://{host}:{port}", highlight=False, soft_wrap=True)
    for name, path in views.items():
        out.print(f"Pareto front of study {name}: http://{host}:{port}{path}", highlight=False, soft_wrap=True)
    if not views:
        out.print("(no study yet; on a study's runs, filter with: tags.pareto = 'true')", highlight=False)
    sys.stdout.flush()
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    if uri.startswith("sqlite:"):
        cmd += ["--default-artifact-root", str(Path(ARTIFACTS).resolve())]
    # MLflow's server forks uvicorn workers, a job runner and queue consumers; stopping only
    # its first process left those running (and holding ~4 GB). It gets a process group of its
    # own, and whatever ends this command (exit, Ctrl-C, SIGTERM) ends the whole group.
    proc = subprocess.Popen(cmd, start_new_session=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        rc = 130
    finally:
        stop_group(proc)
    raise typer.Exit(rc)


@app.command()
def dashboard(
    study: Annotated[str, typer.Option(help="Study name")],
    storage: Annotated[Optional[str], typer.Option(help="The study's storage (default: the journal under mlruns/)")
                       ] = None,
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1 keeps it private)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8080,
) -> None:
    """Start optuna-dashboard on the study's storage (127.0.0.1) and print the study's page:
    its trials, their objectives, the Pareto front and the hypervolume history, live."""
    import sys

    from ..search import default_storage, load_study, open_storage

    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise UserError("asrcompress dashboard needs optuna-dashboard: pip install 'asrcompress[dashboard]'") from None

    url = storage or default_storage(study)
    load_study(url, study)  # one line for a study that is not there
    store = open_storage(url)
    out.print(f"optuna-dashboard: http://{host}:{port}/dashboard/studies/{store.get_study_id_from_name(study)}",
              highlight=False, soft_wrap=True)
    sys.stdout.flush()
    run_server(store, host=host, port=port)


def stop_group(proc: "subprocess.Popen", grace_s: float = 10.0) -> None:
    """SIGTERM to the process group led by `proc`, then SIGKILL to what is left after `grace_s`."""
    import os
    import time

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + grace_s
        while time.time() < deadline:
            proc.poll()  # reap the leader, or the group never looks empty
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


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
    from ..search import default_storage, load_study
    from ..search import export_trial

    if (trial is None) == (pick is None):
        raise UserError("give exactly one of --trial N or --pick \"...\"")
    s = load_study(storage or default_storage(study), study)
    card = export_trial(s, trial, pick, out_dir, tracking_uri, register, overwrite, command_line())
    print(json.dumps(card, indent=2))
