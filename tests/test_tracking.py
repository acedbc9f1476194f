"""The Tracker: Pareto tags change only where the front changed (a remote server sees one
write per change, not one per run after every trial)."""

from asrcompress.tracking import Tracker


def test_mark_pareto_writes_only_changed_tags(tmp_path):
    tr = Tracker(f"sqlite:///{tmp_path / 'm.db'}", "t")
    parent = tr.parent_run({})
    runs = {n: tr.start_trial(parent, n, {"version": 1, "rules": []}, []) for n in range(4)}
    assert tr.mark_pareto({0}) == 1  # every run starts as pareto=false
    assert tr.mark_pareto({0}) == 0
    assert tr.mark_pareto({1, 2}) == 3
    tags = {n: tr.client.get_run(r).data.tags["pareto"] for n, r in runs.items()}
    assert tags == {0: "false", 1: "true", 2: "true", 3: "false"}


def test_processes_opening_a_new_sqlite_store_at_once_all_succeed(tmp_path):
    """MLflow creates its schema without a lock; four processes opening one new store at once
    (a driver and its workers) must not lose one to "table ... already exists"."""
    import subprocess
    import sys

    code = ("import sys; from asrcompress.tracking import Tracker; "
            f"Tracker('sqlite:///{tmp_path / 'm.db'}', sys.argv[1])")
    procs = [subprocess.Popen([sys.executable, "-c", code, f"s{i}"], stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(e[-800:] for e in errors)
