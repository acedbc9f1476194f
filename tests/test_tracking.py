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
