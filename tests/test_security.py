"""Static guards over the package source: YAML only through safe_load, torch.load only with
weights_only=True, no pickle, and servers bound to 127.0.0.1 by default."""

import ast
from pathlib import Path

from .conftest import REPO

SOURCES = sorted((REPO / "src" / "asrcompress").rglob("*.py")) + sorted((REPO / "scripts").rglob("*.py"))


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            yield ast.unparse(node.func), node


def test_yaml_is_only_read_with_safe_load():
    bad = [f"{p}:{n.lineno}" for p in SOURCES for name, n in _calls(p)
           if name in ("yaml.load", "yaml.full_load", "yaml.unsafe_load", "yaml.load_all")]
    assert not bad, bad


def test_torch_load_always_weights_only_and_no_pickle():
    bad = []
    for p in SOURCES:
        for name, n in _calls(p):
            if name == "torch.load":
                kw = {k.arg: ast.unparse(k.value) for k in n.keywords}
                if kw.get("weights_only") != "True":
                    bad.append(f"{p}:{n.lineno}")
            if name in ("pickle.load", "pickle.loads", "dill.load", "joblib.load"):
                bad.append(f"{p}:{n.lineno}")
    assert not bad, bad


def test_servers_default_to_loopback():
    import inspect

    from asrcompress.cli import search

    assert inspect.signature(search.ui).parameters["host"].default == "127.0.0.1"
    text = "\n".join(p.read_text() for p in SOURCES)
    assert "0.0.0.0" not in text
