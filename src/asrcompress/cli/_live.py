"""The live display of `search`: stage, trials done of the budget, trial-minutes, the current
front and its hypervolume, redrawn every few seconds from the study's storage.

A thread polls the storage (its own connection, as any other process on the study would), so
the display sees every worker's trials, here or on other hosts. On a terminal it is a rich
Live panel; in a log (CI, a pipe) it prints one line each time a trial finishes or the stage
changes, so a long run is never silent."""

from __future__ import annotations

import threading
from typing import Callable

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text


class LiveSearch:
    def __init__(self, storage_url: str, study: str, console: Console, interval_s: float = 2.0) -> None:
        self.url, self.study_name, self.console, self.interval_s = storage_url, study, console, interval_s
        self.stage_name = "starting"
        self._stop, self._started = threading.Event(), threading.Event()
        self._lock = threading.Lock()  # stage() (the search's thread) and the poller both draw
        self._thread: threading.Thread | None = None
        self._study = None
        self._last_line: tuple | None = None
        self._live = None

    def stage(self, name: str) -> None:
        """The search tells each stage; the first is told once its input has been checked, so a
        refused command prints its one error line and nothing else."""
        self.stage_name = name
        if not self._started.is_set():
            if self.console.is_terminal:
                from rich.live import Live

                self._live = Live(Text(f"search {self.study_name} · {name}"), console=self.console,
                                  refresh_per_second=2, transient=True)
                self._live.start()
            self._started.set()
        self._tick()

    def __enter__(self) -> "LiveSearch":
        self._thread = threading.Thread(target=self._run, name="asrcompress-live", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._live is not None:
            self._live.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if self._started.is_set():
                self._tick()

    def _tick(self) -> None:
        with self._lock:
            self._draw()

    def _draw(self) -> None:
        try:
            doc = self._snapshot()
        except Exception:  # noqa: BLE001  the display must never end a search; the next tick retries
            return
        if doc is None:  # no study yet: the stage alone
            if self._live is not None:
                self._live.update(Text(f"search {self.study_name} · {self.stage_name}", style="bold"))
            elif self._last_line != (self.stage_name, None):
                self._last_line = (self.stage_name, None)
                self._print(f"search {self.study_name} [{self.stage_name}]")
            return
        if self._live is not None:
            self._live.update(render(doc, self.study_name, self.stage_name))
            return
        key = (self.stage_name, doc["complete"] + doc["pruned"] + doc["failed"])
        if key != self._last_line:
            self._last_line = key
            self._print(line(doc, self.study_name, self.stage_name))

    def _print(self, text: str) -> None:  # plain text: "[stage]" is not rich markup, and a log line is not wrapped
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def _snapshot(self) -> dict | None:
        from ..search import snapshot

        if self._study is None:
            self._study = _open_if_there(self.url, self.study_name)
            if self._study is None:
                return None
        return snapshot(self._study)  # the budget: the study's settings, as a resumed search changes it


def _open_if_there(url: str, name: str):
    """The study if its storage and the study exist already (a display creates nothing)."""
    from pathlib import Path

    import optuna

    from ..search import open_storage

    if url.startswith("journal:") and not Path(url.removeprefix("journal:")).is_file():
        return None
    storage = open_storage(url)
    if name not in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        return None
    return optuna.load_study(study_name=name, storage=storage)


def _counts(doc: dict) -> str:
    done = doc["complete"] + doc["pruned"] + doc["failed"]
    budget = f"/{doc['budget']}" if doc.get("budget") else ""
    return (f"trials {done}{budget} done ({doc['complete']} complete, {doc['pruned']} stopped early, "
            f"{doc['failed']} failed), {doc['running']} running; {doc['trial_minutes']:.1f} trial-minutes")


def line(doc: dict, study: str, stage: str) -> str:
    """One log line: the stage, the counts, the front's size and its hypervolume."""
    front = f"; front {doc.get('front_size', 0)}, hypervolume {doc['hypervolume']:.4g}" if doc["objectives"] else ""
    return f"search {study} [{stage}]: {_counts(doc)}{front}"


def render(doc: dict, study: str, stage: str) -> Group:
    """The terminal panel: a header and the front so far (best WER first), with the base's row."""
    from ..objectives import digits

    head = Text(f"search {study} · {stage}\n{_counts(doc)}", style="bold")
    if not doc["front"]:
        return Group(head, Text("no finished trial yet" if doc["objectives"] else "reading the base model"))
    objectives = doc["objectives"]
    table = Table("trial", *objectives, "x smaller", "baseline",
                  title=f"front: {doc['front_size']} trial(s), hypervolume {doc['hypervolume']:.4g}")
    fmt: Callable[[str, float], str] = lambda o, v: f"{v:.{digits(o)}f}"  # noqa: E731
    if doc.get("base"):
        table.add_row("base", *[fmt(o, doc["base"][o]) if o in doc["base"] else "-" for o in objectives], "1.00", "",
                      style="dim")
    for r in doc["front"]:
        table.add_row(str(r["trial"]), *[fmt(o, r["values"][o]) for o in objectives],
                      f"{r['size_ratio']:.2f}" if r.get("size_ratio") else "-", r.get("baseline") or "")
    if doc["front_size"] > len(doc["front"]):
        table.caption = f"and {doc['front_size'] - len(doc['front'])} more (asrcompress front)"
    return Group(head, table)


class StagedProgress:
    """The live display of the staged search: each stage (scan, surrogate, score, build, the
    rungs, timing, test) with its items done of its total and the time since the search began.
    On a terminal a rich progress bar; in a log one line per stage change and, within a stage,
    at most one every `every_s` seconds (and at its last item). Nothing is drawn before the
    first report, so a refused command prints its one error line alone."""

    def __init__(self, study: str, console: Console, every_s: float = 10.0,
                 clock: Callable[[], float] | None = None) -> None:
        import time

        self.study, self.console, self.every_s = study, console, every_s
        self._clock = clock or time.monotonic
        self._t0 = self._clock()
        self._bar = self._task = None
        self._last: tuple[str, float] | None = None  # (stage, when) of the last log line

    def __call__(self, stage: str, done: int, total: int) -> None:
        label = f"search {self.study} · {stage}"
        if self.console.is_terminal:
            if self._bar is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=self.console, transient=True)
                self._task = self._bar.add_task(label, total=total)
                self._bar.start()
            self._bar.update(self._task, completed=done, total=total, description=label)
            return
        now = self._clock()
        if self._last is not None and self._last[0] == stage and done < total \
                and now - self._last[1] < self.every_s:
            return
        self._last = (stage, now)
        self.console.print(f"search {self.study} [{stage}]: {done}/{total} ({now - self._t0:.0f} s)",
                           highlight=False, markup=False, soft_wrap=True)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
