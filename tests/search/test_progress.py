"""The live display's figures (`search.snapshot`) on a study built by hand, and its two
renderings: the terminal panel and the log line."""

import io

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from rich.console import Console

from asrcompress.cli._live import LiveSearch, line, render
from asrcompress.search import hypervolume, reference_point, snapshot

OBJ = ["wer", "latency@host", "memory"]
BASE = {"wer": 0.10, "latency@host": 40.0, "memory": 20.0}


def _study(values: list[list[float] | None]) -> optuna.Study:
    study = optuna.create_study(directions=["minimize"] * 3)
    study.set_user_attr("objectives", OBJ)
    study.set_user_attr("base", BASE)
    study.set_user_attr("settings", {"budget": 10})
    dist = {"x": FloatDistribution(0, 1)}
    for i, v in enumerate(values):
        state = TrialState.COMPLETE if v is not None else TrialState.PRUNED
        study.add_trial(create_trial(params={"x": i / 10}, distributions=dist, values=v, state=state,
                                     user_attrs={"size_ratio": 2.0 + i}))
    return study


def test_snapshot_counts_front_and_hypervolume():
    pts = [[0.10, 30.0, 10.0], [0.12, 20.0, 8.0], [0.11, 35.0, 12.0], None, [0.15, 10.0, 5.0]]
    s = snapshot(_study(pts))
    assert (s["complete"], s["pruned"], s["failed"], s["running"], s["budget"]) == (4, 1, 0, 0, 10)
    # [0.11, 35, 12] is dominated by [0.10, 30, 10]; the front is best WER first.
    assert [r["trial"] for r in s["front"]] == [0, 1, 4] and s["front_size"] == 3
    assert s["front"][0]["values"] == dict(zip(OBJ, pts[0])) and s["front"][1]["size_ratio"] == 3.0
    ref = reference_point(BASE, OBJ)
    assert s["hypervolume"] == pytest.approx(hypervolume([p for p in pts if p], ref))
    # Only the front bounds the volume: the dominated point adds nothing.
    assert s["hypervolume"] == pytest.approx(hypervolume([pts[0], pts[1], pts[4]], ref))


def test_snapshot_before_the_base_is_measured():
    study = optuna.create_study(directions=["minimize"] * 3)
    s = snapshot(study, budget=7)
    assert s["stage"] == "preparing" and s["front"] == [] and s["budget"] == 7 and s["hypervolume"] == 0.0


def test_panel_and_log_line_show_the_front():
    s = snapshot(_study([[0.10, 30.0, 10.0], [0.12, 20.0, 8.0]]), front_rows=1)
    console = Console(file=io.StringIO(), width=160, record=True)
    console.print(render(s, "demo", "trials"))
    text = console.export_text()
    assert "search demo · trials" in text and "trials 2/10 done" in text
    assert "front: 2 trial(s)" in text and "and 1 more" in text  # one row shown of two
    assert "base" in text and "0.1000" in text
    assert line(s, "demo", "trials").startswith("search demo [trials]: trials 2/10 done (2 complete")


def test_log_mode_prints_a_line_per_change_and_never_raises(tmp_path):
    buf = io.StringIO()
    live = LiveSearch(f"journal:{tmp_path / 'none.journal'}", "absent", Console(file=buf, width=80), interval_s=60)
    with live:
        import time

        time.sleep(0.05)  # nothing is printed before the first stage (a refused command prints its error alone)
        assert buf.getvalue() == ""
        live.stage("preparing")
        live.stage("preparing")  # the same stage again: no second line
        live.stage("trials")
    assert buf.getvalue().splitlines() == ["search absent [preparing]", "search absent [trials]"]
    assert not (tmp_path / "none.journal").exists()  # the display creates nothing
