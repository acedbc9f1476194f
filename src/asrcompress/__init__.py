"""asrcompress: search layer-wise compression policies for speech acoustic models.

The public Python API (docs/api.md): `load_model`, `compress`, `sensitivity`, `propose`, `finalists`, `search`, `front`,
`export`.
They are imported on first use, so `import asrcompress` (and the CLI's start) stays light.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "compress", "export", "finalists", "front", "load_model", "propose", "search", "sensitivity"]


def __getattr__(name: str):
    if name in ("search", "export"):  # the callable subpackage (see _callable)
        import importlib

        return importlib.import_module(f".{name}", __name__)
    if name in ("compress", "finalists", "front", "load_model", "propose", "sensitivity"):
        from . import _api

        return getattr(_api, name)
    raise AttributeError(f"module 'asrcompress' has no attribute {name!r}")
