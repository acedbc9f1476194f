"""Command-line interface, one module per command group; it parses arguments and prints.
Bad input prints one line naming the bad item and exits with code 2."""

from __future__ import annotations

import sys

from ..errors import UserError
# Importing a module registers its commands; this order is the order of `asrcompress --help`.
from . import data, compress, deploy, search, sensitivity, propose, bench  # noqa: F401,I001
from ._app import app, err
from .search import _search_cfg

__all__ = ["_search_cfg", "app", "main"]


def main() -> None:
    try:
        app(standalone_mode=True)
    except UserError as e:
        err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted; completed work is kept")
        sys.exit(130)
