"""The Typer app, its consoles and global options, shared by the command modules."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.console import Console


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Search layer-wise compression policies for speech acoustic models.")
err = Console(stderr=True)
out = Console()


@app.callback()
def _global_options(
    trust_pickle: Annotated[bool, typer.Option(
        "--trust-pickle", help="Allow model folders whose weights are a pickle checkpoint (model.pt); they are "
                               "still read with torch.load(weights_only=True)")] = False,
) -> None:
    if trust_pickle:
        from ..models import TRUST_PICKLE_ENV

        os.environ[TRUST_PICKLE_ENV] = "1"


def command_line() -> str:
    return "asrcompress " + " ".join(sys.argv[1:])
