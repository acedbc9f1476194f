"""`asrcompress.search(...)` and `asrcompress.export(...)` are API functions, and also the names of
two subpackages. Once a subpackage is imported, Python binds its name on the parent package, so
the two must be one object: the subpackage module is made callable, and calling it calls the API
function (`asrcompress.search.load_space` still works)."""

from __future__ import annotations

import sys
import types


def make_callable(module_name: str, api_name: str) -> None:
    class CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            from . import _api

            return getattr(_api, api_name)(*args, **kwargs)

    CallableModule.__call__.__doc__ = f"asrcompress.{api_name}: see asrcompress._api.{api_name}"
    sys.modules[module_name].__class__ = CallableModule
