"""The Ray Tune backend on a real 2-node Ray cluster started on this machine."""

import json
import sys

import pytest

from .test_search import cli, env, mlflow_runs, search_args, study_of  # noqa: F401  (fixture)

ray = pytest.importorskip("ray")


@pytest.fixture()
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c
    c.shutdown()


def test_ray_search_on_two_nodes(env, cluster):  # noqa: F811
    from optuna.trial import TrialState

    assert len([n for n in ray_nodes(cluster.address) if n["Alive"]]) == 2
    args = search_args(env, trials=3, workers=2) + ["--backend", "ray", "--address", cluster.address]
    p = cli(env["cwd"], *args, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads(p.stdout)
    study = study_of(env)
    finished = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(finished) >= 3 and len({t.number for t in finished}) == len(finished)
    assert summary["front"]
    children = [r for r in mlflow_runs(env) if r.data.tags.get("asrcompress_role") == "trial"]
    assert len(children) >= 3 and all(r.info.status != "RUNNING" for r in children)


def ray_nodes(address: str) -> list[dict]:
    import subprocess

    code = f"import ray, json; ray.init(address={address!r}); print(json.dumps(ray.nodes()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    return json.loads(out.strip().splitlines()[-1])
