"""Writing outputs safely, once for every command: never over an input, never half-written.

Every writer goes through `output_folder` or `output_file`:
- an output that is an input, contains one, or lies inside an input folder is refused
  (paths compared after resolving symlinks and `..`);
- the output is built in a hidden sibling and renamed into place only when complete, so a
  crash or kill -9 at any point leaves the old output untouched, or no output at all;
- a folder being built carries INCOMPLETE, which `load_model` refuses, until it is in place, so
  no half-written or hidden folder ever loads as a model; a finished one carries MARKER (ours);
- an existing non-empty folder without MARKER is replaced only with --overwrite.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError

MARKER = ".asrcompress-output"
INCOMPLETE = ".asrcompress-incomplete"
_STAGE = ".partial"  # `.NAME.partial-PID` (one run) or `.NAME.partial` (a resumable run)
_OLD = ".replaced"


def real(path: Path) -> Path:
    """The path with symlinks and `..` resolved, whether or not it exists yet."""
    return Path(os.path.realpath(os.path.abspath(path)))


def _inside(child: Path, parent: Path) -> bool:
    return child != parent and parent in child.parents


def refuse_overlap(out: Path, inputs: Mapping[str, Path | None], flag: str = "--out") -> None:
    """One `error:` line when `out` is, contains or lies inside one of `inputs` ({what: path})."""
    o = real(out)
    for what, given in inputs.items():
        if given is None:
            continue
        i = real(given)
        if o == i:
            raise UserError(f"{flag} {out}: is the {what} ({given}); write the output somewhere else")
        if _inside(i, o):
            raise UserError(f"{flag} {out}: contains the {what} ({given}), which writing it would destroy; "
                            "choose another output")
        if i.is_dir() and _inside(o, i):
            raise UserError(f"{flag} {out}: lies inside the {what} folder ({given}); write the output outside it")


def is_ours(folder: Path) -> bool:
    return (Path(folder) / MARKER).is_file()


def is_incomplete(folder: Path) -> bool:
    return (Path(folder) / INCOMPLETE).exists()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep(out: Path) -> None:
    """Remove the hidden siblings that killed runs of this output left behind (their process is
    gone); a resumable run's stage is kept, since it holds work a re-run continues."""
    pattern = re.compile(re.escape(f".{out.name}") + rf"(?:{re.escape(_STAGE)}|{re.escape(_OLD)})-(\d+)")
    for p in out.parent.iterdir():
        m = pattern.match(p.name)
        if m and not _pid_alive(int(m.group(1))):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _check_replaceable(out: Path, overwrite: bool, flag: str) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out}: exists and is not a folder; choose another output")
    if out.is_dir() and any(out.iterdir()) and not is_ours(out) and not overwrite:
        raise UserError(f"{flag} {out}: exists, is not empty and was not written by asrcompress; pass "
                        "--overwrite to replace it, or choose another output")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where the
    system or file system cannot."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _swap_in(stage: Path, out: Path) -> None:
    """Put `stage` (still marked INCOMPLETE) at `out`, then declare it finished.

    An existing `out` is exchanged with it in one atomic step, so a kill leaves the old output or
    the new one; where that is not supported, the old one is moved aside first (a kill between
    the two renames leaves no output, never a mixture). What is moved aside is marked INCOMPLETE
    before it is removed, so a half-deleted old folder never loads either; the next run sweeps it.
    """
    old = None
    if not out.exists():
        os.rename(stage, out)
    elif _exchange(stage, out):
        old = stage  # it now holds the old output
    else:
        old = out.parent / f".{out.name}{_OLD}-{os.getpid()}"
        os.rename(out, old)
        (old / INCOMPLETE).write_text("replaced\n")
        os.rename(stage, out)
    if old is not None:
        (old / INCOMPLETE).write_text("replaced\n")
    # Declared finished only once in place: a kill at any point before this leaves no complete
    # new folder anywhere that loads (an unfinished one is refused until the command is re-run).
    (out / INCOMPLETE).unlink()
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def output_folder(out: Path, inputs: Mapping[str, Path | None], *, overwrite: bool = False, command: str = "",
                  kind: str = "", resume: bool = False, start_from: Path | None = None,
                  flag: str = "--out") -> Iterator[Path]:
    """Yields the hidden folder to write into; on success it becomes `out`.

    `resume`: the stage has a fixed name and is kept when the run fails or stops, so running the
    same command again continues it (corpus synthesis, training). `start_from`: a new stage
    starts as a copy of that folder (finalize updates a model; training goes on from one).
    """
    out = Path(out)
    refuse_overlap(out, inputs, flag)
    out = real(out)  # a symlinked output is written where it points
    _check_replaceable(out, overwrite, flag)
    out.parent.mkdir(parents=True, exist_ok=True)
    _sweep(out)
    stage = out.parent / (f".{out.name}{_STAGE}" if resume else f".{out.name}{_STAGE}-{os.getpid()}")
    if not stage.is_dir():
        if start_from is not None and Path(start_from).is_dir():
            shutil.copytree(start_from, stage, symlinks=True)
        else:
            stage.mkdir()
    (stage / INCOMPLETE).write_text(f"being written by {socket.gethostname()}:{os.getpid()}\n")
    (stage / MARKER).unlink(missing_ok=True)
    try:
        yield stage
    except BaseException:
        if not resume:
            shutil.rmtree(stage, ignore_errors=True)
        raise
    (stage / MARKER).write_text(json.dumps({"kind": kind, "command": command,
                                            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
    _swap_in(stage, out)


@contextmanager
def output_file(out: Path, inputs: Mapping[str, Path | None], flag: str = "--out") -> Iterator[Path]:
    """Yields a hidden temporary file beside `out` (same suffix, for writers that go by it); on
    success it replaces `out` in one rename. An existing file is replaced; a folder is refused."""
    out = Path(out)
    refuse_overlap(out, inputs, flag)
    if out.is_dir():
        raise UserError(f"{flag} {out}: is a folder; give a file name")
    out = real(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _sweep(out)
    tmp = out.parent / f".{out.name}{_STAGE}-{os.getpid()}{out.suffix}"
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(out: Path, text: str, inputs: Mapping[str, Path | None] | None = None) -> None:
    """A small text output, replaced in one rename."""
    with output_file(out, inputs or {}) as tmp:
        tmp.write_text(text)
