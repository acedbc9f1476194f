"""The package layout rules (docs/architecture.md): a package's `__init__` is its only interface
to the others, and no source module is over 400 lines."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "asrcompress"
MAX_LINES = 400


def _package_of(path: Path) -> str:
    rel = path.relative_to(SRC).parts
    return rel[0] if len(rel) > 1 else ""  # "" is the top-level package's own modules


def _target(path: Path, node: ast.ImportFrom) -> list[str]:
    """The absolute dotted modules an import names (relative imports resolved)."""
    if node.level:
        base = list(path.relative_to(SRC).parent.parts)
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        mod = ".".join(["asrcompress", *base] + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    if not mod.startswith("asrcompress"):
        return []
    # `from ..compression import _io` names a module too
    return [mod] + [f"{mod}.{a.name}" for a in node.names if a.name.startswith("_")]


def private_imports() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        own = _package_of(path)
        for node in ast.walk(ast.parse(path.read_text())):
            mods = []
            if isinstance(node, ast.ImportFrom):
                mods = _target(path, node)
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names if a.name.startswith("asrcompress")]
            for mod in mods:
                parts = mod.split(".")[1:]
                if len(parts) < 2 or parts[0] == own or not (SRC / parts[0]).is_dir():
                    continue  # the package itself, the top level's own modules, or not a package
                if any(p.startswith("_") and p != "__init__" for p in parts[1:]):
                    found.append(f"{path.relative_to(SRC)}:{node.lineno} imports {mod}")
    return found


def test_no_package_imports_another_package_s_private_modules():
    found = private_imports()
    assert not found, "\n".join(found)


def test_no_source_module_is_over_400_lines():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_every_package_imports_first_in_a_fresh_interpreter():
    """No import cycle: each package can be the first one a program imports."""
    import subprocess
    import sys

    pkgs = sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").is_file())
    procs = {pkg: subprocess.Popen([sys.executable, "-c", f"import asrcompress.{pkg}"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True) for pkg in pkgs}
    for pkg, p in procs.items():
        _, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, f"asrcompress.{pkg}: {stderr.strip().splitlines()[-1]}"
