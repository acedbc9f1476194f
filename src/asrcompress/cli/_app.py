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


def torch_device(flag: str, name: str) -> str:
    """`--device` auto | cpu | cuda as a torch device name; a UserError naming the flag when the
    value is unknown or no GPU is there. auto: a GPU when torch sees one."""
    import torch

    from ..errors import UserError

    if name not in ("auto", "cpu", "cuda"):
        raise UserError(f"{flag} {name!r} is not one of auto, cpu, cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{flag} cuda: no CUDA device is available on this machine")
    return "cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name)


def command_line() -> str:
    return "asrcompress " + " ".join(sys.argv[1:])
