"""Outputs never overwrite inputs and are never half-written (one helper, `asrcompress._outputs`,
used by every writer): refusals for an output that is, lies inside or contains an input, for every
writer command; the inputs' sha256 unchanged; kill -9 at a random point leaves the old output or
none, and never a folder `load_model` accepts."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asrcompress._outputs import INCOMPLETE, MARKER, output_file, output_folder, refuse_overlap
from asrcompress.errors import UserError

from .conftest import REPO, needs_synth
from .test_errors import one_error_line, run_cli

POLICY = "version: 1\nrules:\n  - global: true\n    quant: {bits: 8, kind: linear}\n"


def tree_sha(path: Path) -> dict[str, str]:
    """sha256 of every file under `path` (or of the file itself)."""
    path = Path(path)
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


# --- the helper ---------------------------------------------------------------------------

PARTS = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(out=PARTS, inp=PARTS, input_is_dir=st.booleans())
def test_overlap_is_refused_exactly_when_one_path_holds_the_other(tmp_path_factory, out, inp, input_is_dir):
    root = tmp_path_factory.mktemp("overlap")
    i = root.joinpath(*inp)
    if input_is_dir:
        i.mkdir(parents=True)
    else:
        i.parent.mkdir(parents=True, exist_ok=True)
        i.write_text("x")
    o = root.joinpath(*out)
    same = out == inp
    out_holds_input = len(out) < len(inp) and inp[:len(out)] == out
    input_holds_out = input_is_dir and len(inp) < len(out) and out[:len(inp)] == inp
    if same or out_holds_input or input_holds_out:
        with pytest.raises(UserError, match="--out"):
            refuse_overlap(o, {"model": i})
    else:
        refuse_overlap(o, {"model": i})


def test_overlap_sees_through_symlinks_and_dotdot(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (tmp_path / "link").symlink_to(model)
    with pytest.raises(UserError, match="is the model"):
        refuse_overlap(tmp_path / "link", {"model": model})
    with pytest.raises(UserError, match="is the model"):
        refuse_overlap(tmp_path / "x" / ".." / "model", {"model": model})
    with pytest.raises(UserError, match="lies inside the model folder"):
        refuse_overlap(tmp_path / "link" / "out", {"model": model})


def test_a_failed_write_leaves_the_old_output_and_no_stage(tmp_path):
    out = tmp_path / "out"
    with output_folder(out, {}) as stage:
        (stage / "f").write_text("old")
    before = tree_sha(out)
    with pytest.raises(RuntimeError), output_folder(out, {}) as stage:
        (stage / "f").write_text("half")
        raise RuntimeError("crash")
    assert tree_sha(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (out / MARKER).is_file() and not (out / INCOMPLETE).exists()


def test_a_folder_we_did_not_write_is_replaced_only_with_overwrite(tmp_path):
    out = tmp_path / "theirs"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="was not written by asrcompress; pass --overwrite"):
        with output_folder(out, {}):
            pass
    assert (out / "notes.txt").read_text() == "mine"
    with output_folder(out, {}, overwrite=True) as stage:
        (stage / "f").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "f"]


def test_a_resumable_stage_survives_a_failure_and_is_continued(tmp_path):
    out = tmp_path / "corpus"
    with pytest.raises(KeyboardInterrupt), output_folder(out, {}, resume=True) as stage:
        (stage / "train.jsonl").write_text("done")
        raise KeyboardInterrupt
    assert not out.exists()
    with output_folder(out, {}, resume=True) as stage:
        assert (stage / "train.jsonl").read_text() == "done"  # the work so far is kept
    assert (out / "train.jsonl").is_file() and not (out / INCOMPLETE).exists()


def test_files_are_replaced_in_one_rename(tmp_path):
    out = tmp_path / "model.onnx"
    out.write_text("old")
    with pytest.raises(RuntimeError), output_file(out, {}) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_load_model_refuses_an_unfinished_folder(tmp_path):
    from asrcompress.models import load_model, save_model

    from .compression.models import conformer

    save_model(conformer(), tmp_path / "m")
    (tmp_path / "m" / INCOMPLETE).write_text("")
    with pytest.raises(UserError, match="unfinished output"):
        load_model(tmp_path / "m")


# --- every writer command refuses to write over, into or around its inputs ----------------

@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_corpus):
    """A tiny model, a policy, a trained model of ours, and a finished study with one trial."""
    from asrcompress.models import save_model

    from .compression.models import conformer

    root = tmp_path_factory.mktemp("writers")
    save_model(conformer(), root / "model")
    (root / "policy.yaml").write_text(POLICY)
    env = {"root": root, "model": root / "model", "policy": root / "policy.yaml", "corpus": tiny_corpus}
    code, out, err = run_cli(["compress", "--model", str(env["model"]), "--policy", str(env["policy"]),
                              "--out", str(root / "ours")], root)
    assert code == 0, err
    env["ours"] = root / "ours"
    env |= _study_with_one_trial(root, env)
    return env


def _study_with_one_trial(root: Path, env: dict) -> dict:
    """A study on journal storage whose one COMPLETE trial's model is env['ours']."""
    import optuna

    from asrcompress.search import open_storage
    from asrcompress.search._settings import SETTINGS_ATTR, build_settings

    (root / "space.yaml").write_text("version: 1\ngroups:\n  - pattern: \"encoder.*\"\n    bits: [null, 8]\n"
                                     "methods: [quant]\ndistill: {steps: 0}\nobjectives: [wer, latency@host, memory]\n")
    url = f"journal:{root / 'study.journal'}"
    study = optuna.create_study(storage=open_storage(url), study_name="w", directions=["minimize"] * 3)
    settings_ = build_settings(root / "space.yaml", env["model"], env["corpus"], REPO / "hardware_profiles",
                               root / "studies" / "w", budget=1, dev_utterances=4)
    study.set_user_attr(SETTINGS_ATTR, settings_.to_dict())
    study.set_user_attr("objectives", ["wer", "latency@host", "memory"])
    study.enqueue_trial({})
    trial = study.ask()
    for k, v in {"model_dir": str(env["ours"]), "policy": {"version": 1, "rules": []}, "size_ratio": 3.9}.items():
        trial.set_user_attr(k, v)
    study.tell(trial, [0.5, 10.0, 5.0])
    return {"storage": url, "study": "w"}


def _writer_args(env: dict, cmd: str, out: Path) -> list[str]:
    m, c = str(env["model"]), str(env["corpus"])
    return {
        "compress": ["compress", "--model", m, "--policy", str(env["policy"]), "--corpus", c, "--out", str(out)],
        "export-onnx": ["export-onnx", "--model", m, "--out", str(out)],
        "export": ["export", "--study", env["study"], "--storage", env["storage"], "--trial", "0", "--no-register",
                   "--out", str(out)],
        "train": ["train", "--corpus", c, "--out", str(out), "--epochs", "1"],
        "finalize": ["finalize", "--model", str(env["ours"]), "--corpus", c, "--out", str(out)],
        "bench": ["bench", "--model", m, "--corpus", c, "--space", str(env["root"] / "space.yaml"), "--no-peers",
                  "--out", str(out), "--workdir", str(env["root"] / "benchwork")],
    }[cmd]


# (command, output the user names, the input it collides with, how)
COLLISIONS = [
    ("compress", lambda e: e["model"], "is the model"),
    ("compress", lambda e: e["model"] / "compressed", "lies inside the model folder"),
    ("compress", lambda e: e["root"], "contains the model"),
    ("compress", lambda e: e["policy"], "is the policy"),
    ("compress", lambda e: e["corpus"] / "out", "lies inside the corpus folder"),
    ("export-onnx", lambda e: e["model"] / "model.onnx", "lies inside the model folder"),
    ("export-onnx", lambda e: e["model"], "is the model"),
    ("export", lambda e: e["ours"], "is the trial's model"),
    ("export", lambda e: e["model"] / "bundle", "lies inside the study's base model folder"),
    ("export", lambda e: e["corpus"] / "b", "lies inside the study's corpus folder"),
    ("train", lambda e: e["corpus"], "is the corpus"),
    ("train", lambda e: e["corpus"] / "model", "lies inside the corpus folder"),
    ("finalize", lambda e: e["corpus"] / "m", "lies inside the corpus folder"),
    ("finalize", lambda e: e["ours"], "is the model"),
    ("export-onnx", lambda e: e["root"], "contains the model"),
    ("export", lambda e: e["root"], "contains the trial's model"),
    ("train", lambda e: e["corpus"].parent, "contains the corpus"),
    ("finalize", lambda e: e["root"], "contains the model"),
    ("bench", lambda e: e["model"] / "bench", "lies inside the model folder"),
]


@needs_synth
@pytest.mark.parametrize("cmd, where, says", COLLISIONS, ids=[f"{c}-{s.split()[0]}-{i}" for i, (c, _, s)
                                                             in enumerate(COLLISIONS)])
def test_every_writer_refuses_an_output_that_collides_with_an_input(inputs, cmd, where, says):
    watched = [inputs[k] for k in ("model", "policy", "corpus", "ours")]
    before = [tree_sha(p) for p in watched]
    line = one_error_line(*run_cli(_writer_args(inputs, cmd, where(inputs)), inputs["root"]))
    assert says in line, line
    assert [tree_sha(p) for p in watched] == before  # every input byte-for-byte as it was


@needs_synth
def test_compress_over_its_own_model_folder_is_refused_and_the_model_is_kept(inputs):
    """The reported data loss: `compress --model M --out M` overwrote M's weights."""
    before = tree_sha(inputs["model"])
    code, out, err = run_cli(["compress", "--model", str(inputs["model"]), "--policy", str(inputs["policy"]),
                              "--out", str(inputs["model"])], inputs["root"])
    assert "is the model" in one_error_line(code, out, err)
    assert tree_sha(inputs["model"]) == before


@needs_synth
def test_a_search_run_from_inside_its_model_folder_is_refused(inputs):
    """Its trial folder would lie inside the base model's folder."""
    line = one_error_line(*run_cli(["search", "--space", str(inputs["root"] / "space.yaml"), "--model", ".",
                                    "--corpus", str(inputs["corpus"]), "--study", "inside"], inputs["model"]))
    assert "the study's trial folder" in line and "lies inside the model folder" in line


def test_finalize_in_place_needs_a_model_we_wrote(tmp_path, tiny_corpus):
    from asrcompress.models import save_model

    from .compression.models import conformer

    save_model(conformer(), tmp_path / "theirs")
    line = one_error_line(*run_cli(["finalize", "--model", str(tmp_path / "theirs"), "--corpus", str(tiny_corpus)],
                                   tmp_path))
    assert "--model" in line and "was not written by asrcompress" in line


def test_corpus_into_a_folder_we_did_not_write_is_refused(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.tex").write_text("years of work")
    line = one_error_line(*run_cli(["corpus", "--out", str(tmp_path / "docs"), "--size", "small"], tmp_path))
    assert "was not written by asrcompress" in line
    assert (tmp_path / "docs" / "thesis.tex").read_text() == "years of work"


# --- kill -9 at a random point ------------------------------------------------------------

def _accepted_by_load_model(folder: Path) -> bool:
    from asrcompress.models import load_model

    try:
        load_model(folder)
        return True
    except UserError:
        return False


def _kill_at(args: list[str], cwd: Path, seconds: float) -> int | None:
    """Run the CLI, SIGKILL its whole process group after `seconds`; the exit code if it
    finished first."""
    p = subprocess.Popen([sys.executable, "-m", "asrcompress.cli", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        return p.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        return None


def _old_output(out: Path, model_like: bool, env: dict) -> None:
    """An earlier output of ours at `out`, which a killed run must leave as it was."""
    import shutil

    if out.suffix:  # a file
        out.write_bytes(b"an earlier export")
    elif model_like:
        shutil.copytree(env["ours"], out)
    else:
        out.mkdir()
        (out / "corpus.json").write_text("{}")
        (out / MARKER).write_text("{}")


def _check_after_kill(out: Path, before: dict, finished: int | None, model_like: bool) -> None:
    """Killed: the old output byte for byte, or (killed in the instant between putting the new
    one in place and declaring it finished) one that is refused as unfinished, or (killed after
    that) the complete new output. Either way no hidden sibling loads unless it is the old output."""
    old_kept = tree_sha(out) == before
    complete = out.exists() and (out.is_file() or ((out / MARKER).is_file() and not (out / INCOMPLETE).exists()))
    if finished is None or finished != 0:  # (killed as it exited, its output written: complete)
        assert old_kept or (out / INCOMPLETE).exists() or complete
    else:
        assert complete
    for sibling in out.parent.iterdir():
        if sibling.is_dir() and sibling != out and sibling.name.startswith(f".{out.name}"):
            assert not (model_like and _accepted_by_load_model(sibling)) or tree_sha(sibling) == before, sibling
    if model_like:
        assert _accepted_by_load_model(out) == (not (out / INCOMPLETE).exists())


# (command, output name, model folder?, seconds to kill within)
FAST_KILLS = [("compress", "c", True, 6.0), ("export-onnx", "m.onnx", False, 8.0), ("finalize", "f", True, 8.0)]
SLOW_KILLS = [("train", "t", True, 25.0), ("export", "b", False, 20.0), ("corpus", "k", False, 10.0),
              ("calibrate", "p.yaml", False, 14.0)]


def _kill_test(inputs: dict, cmd: str, name: str, model_like: bool, limit: float, seed: int) -> None:
    rng = random.Random(seed)
    out = inputs["root"] / f"kill-{cmd}-{seed}" / name
    out.parent.mkdir()
    _old_output(out, model_like, inputs)
    before = tree_sha(out)
    args = {"corpus": ["corpus", "--out", str(out), "--size", "small", "--workers", "1"],
            "calibrate": ["calibrate", "--out", str(out), "--quick", "--no-reference"]}.get(cmd) \
        or _writer_args(inputs, cmd, out)
    finished = _kill_at(args, inputs["root"], rng.uniform(2.0, limit))  # ~2 s go to importing torch
    _check_after_kill(out, before, finished, model_like)


@needs_synth
@pytest.mark.parametrize("cmd, name, model_like, limit", FAST_KILLS, ids=[k[0] for k in FAST_KILLS])
def test_kill_9_at_a_random_point_leaves_the_old_output(inputs, cmd, name, model_like, limit):
    _kill_test(inputs, cmd, name, model_like, limit, seed=int(time.time()))


@pytest.mark.slow
@needs_synth
@pytest.mark.parametrize("cmd, name, model_like, limit", SLOW_KILLS, ids=[k[0] for k in SLOW_KILLS])
def test_kill_9_of_long_writers_leaves_the_old_output(inputs, cmd, name, model_like, limit):
    for seed in range(2):
        _kill_test(inputs, cmd, name, model_like, limit, seed=seed + int(time.time()))


KILL_AT_RENAME = """
import os, signal, sys
kill_after, renames = int(sys.argv[1]), [0]
real = os.rename
def rename(a, b):
    real(a, b)
    renames[0] += 1
    if renames[0] == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)
os.rename = rename
import asrcompress._outputs as o
o._exchange = lambda a, b: False  # the two-rename path, where a kill can fall between them
sys.argv = ["asrcompress", *sys.argv[2:]]
from asrcompress.cli import main
main()
"""


@needs_synth
@pytest.mark.parametrize("kill_after", [1, 2])
def test_kill_between_the_renames_leaves_no_output_or_the_new_one(inputs, kill_after):
    """Where the atomic exchange is not available: killed after the old output is moved aside,
    there is no output (never a mixture); killed just after the new one is renamed in place,
    before it is declared finished, it is refused as unfinished. Either way nothing new loads,
    and the next run completes the output and sweeps what the killed one left."""
    out = inputs["root"] / f"renames-{kill_after}" / "c"
    out.parent.mkdir()
    _old_output(out, True, inputs)
    before = tree_sha(out)
    args = _writer_args(inputs, "compress", out)
    p = subprocess.run([sys.executable, "-c", KILL_AT_RENAME, str(kill_after), *args], cwd=inputs["root"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    if kill_after == 1:
        assert not out.exists()
    else:
        assert (out / INCOMPLETE).exists() and not _accepted_by_load_model(out)
    leftovers = [s for s in out.parent.iterdir() if s.name != "c"]
    assert leftovers and all(s.name.startswith(".c.") for s in leftovers)  # hidden siblings only
    for s in leftovers:  # the unfinished stage never loads; the old output moved aside is whole
        assert not _accepted_by_load_model(s) or tree_sha(s) == before
    code, _, err = run_cli(args, inputs["root"])
    assert code == 0, err
    assert [s.name for s in out.parent.iterdir()] == ["c"]  # swept
    assert json.loads((out / MARKER).read_text())["kind"] == "model"


def test_what_killed_runs_left_is_swept_by_the_next_run(tmp_path):
    """Hidden siblings of processes that are gone (a stage, a file's temporary, a replaced old
    output) are removed by the next write of that output; a resumable stage is kept."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    left = [f".m.onnx.partial-{dead}.onnx", f".b.partial-{dead}", f".b.replaced-{dead}", ".b.partial"]
    for name in left:
        (tmp_path / name).mkdir() if "onnx" not in name else (tmp_path / name).write_text("half")
    with output_file(tmp_path / "m.onnx", {}) as tmp:
        tmp.write_text("whole")
    with output_folder(tmp_path / "b", {}) as stage:
        (stage / "f").write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.partial", "b", "m.onnx"]


@pytest.mark.slow
@needs_synth
def test_kill_9_of_the_bench_leaves_its_earlier_report(inputs):
    """The bench's report files are replaced in one rename each, at the end: a kill at any
    point before leaves the earlier report byte for byte."""
    stem = inputs["root"] / "kill-bench" / "benchmarks"
    stem.parent.mkdir()
    for suffix in (".md", ".json"):
        stem.with_suffix(suffix).write_text(f"an earlier report{suffix}")
    before = {s: tree_sha(stem.with_suffix(s)) for s in (".md", ".json")}
    args = _writer_args(inputs, "bench", stem) + ["--budget-minutes", "0.2", "--workers", "1"]
    finished = _kill_at(args, inputs["root"], random.Random(int(time.time())).uniform(3.0, 30.0))
    after = {s: tree_sha(stem.with_suffix(s)) for s in (".md", ".json")}
    assert after == before or finished == 0  # only a finished bench replaces them
    leftovers = [p.name for p in stem.parent.iterdir() if p.name.startswith(".")]
    assert all(".partial-" in n for n in leftovers)  # at most a killed writer's temporary, never a half report
