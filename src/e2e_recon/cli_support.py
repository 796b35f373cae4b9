"""What every ``e2e-recon`` command shares: the consoles, the error wrapper, common options.

Split from ``cli.py`` so that the command modules (``cli.py``, ``cli_experiments.py``)
import these from one place.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from e2e_recon.config import preset_names
from e2e_recon.errors import E2EReconError
from e2e_recon.fileio import is_write_failure, output_error

__all__ = ["ConfigOpt", "DeviceOpt", "SetOpt", "console", "err_console", "state", "user_errors"]

console = Console()
err_console = Console(stderr=True)
state = {"debug": os.environ.get("E2E_RECON_DEBUG", "") not in ("", "0")}

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Print a project error as one line and exit 2 (traceback only with --debug)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except E2EReconError as exc:
            if state["debug"]:
                raise
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
        except OSError as exc:  # a write the library did not wrap: still one line
            if state["debug"] or not is_write_failure(exc):
                raise
            # write() names no file: then the command's output folder is named.
            where = Path(str(exc.filename)).parent if exc.filename else _output_folder(kwargs)
            message = output_error(where, exc)
            err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt as exc:  # a StoppedBySignal after SIGTERM carries 143
            err_console.print("interrupted")
            raise typer.Exit(code=getattr(exc, "exit_code", 130)) from None

    return wrapper  # type: ignore[return-value]


#: Options that name a command's output, in the order they are looked for.
OUTPUT_OPTIONS = ("out", "run_dir", "recon", "runs_dir", "dest")


def _output_folder(kwargs: dict[str, Any]) -> Path:
    """The folder a command writes to, from its options; else the working folder."""
    for name in OUTPUT_OPTIONS:
        value = kwargs.get(name)
        if isinstance(value, (str, Path)) and str(value):
            return Path(value)
    return Path.cwd()


ConfigOpt = Annotated[
    str,
    typer.Option(
        "--config", "-c", help=f"Preset name ({', '.join(preset_names())}) or a YAML file."
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config value: section.key=value (repeatable)."),
]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")]
