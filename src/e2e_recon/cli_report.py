"""``e2e-recon report``: the self-contained HTML page of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from e2e_recon.cli_support import console, user_errors
from e2e_recon.errors import ConfigError

__all__ = ["report"]


@user_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (from train or demo).")],
    out: Annotated[Path | None, typer.Option(help="HTML file (default RUN_DIR/report/).")] = None,
    grid_png: Annotated[
        Path | None, typer.Option(help="Also save one test set's image grid as a PNG here.")
    ] = None,
    grid_set: Annotated[
        str, typer.Option(help="Test set of --grid-png: natural, shapes or letters.")
    ] = "natural",
) -> None:
    """Write a self-contained HTML report: image grids, metrics, training curves.

    Example: [bold]e2e-recon report runs/00000-sub-01-demo[/]
    """
    from e2e_recon.report.contents import SET_ORDER
    from e2e_recon.report.report import save_grid_png, write_report

    if grid_png is not None and grid_set not in SET_ORDER:
        raise ConfigError(f"--grid-set {grid_set!r}: choose one of {', '.join(SET_ORDER)}")
    path = write_report(run_dir, out)
    console.print(f"wrote {path}")
    if grid_png is not None:
        console.print(f"wrote {save_grid_png(run_dir, grid_png, set_name=grid_set)}")
