"""``e2e-recon download`` and ``check-data``: the public files and what is present."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from e2e_recon.cli_support import console, user_errors

__all__ = ["check_data", "download"]


@user_errors
def download(
    what: Annotated[str, typer.Argument(help="fmri, models, caffenet, alexnet, eval-nets or all.")],
    subject: Annotated[
        list[str] | None, typer.Option(help="Subjects (default: all three).")
    ] = None,
    dest: Annotated[Path | None, typer.Option(help="Data home (default: E2E_RECON_HOME).")] = None,
    force: Annotated[bool, typer.Option(help="Download again even if verified.")] = False,
    list_only: Annotated[
        bool, typer.Option("--list", help="Only list the files, sizes and destinations.")
    ] = False,
) -> None:
    from e2e_recon.data.fetching.download import download_cli

    download_cli(
        what, subjects=subject or None, dest=dest, force=force, console=console, dry_run=list_only
    )


@user_errors
def check_data(
    subject: Annotated[str, typer.Option(help="Subject to check.")] = "sub-01",
    dest: Annotated[Path | None, typer.Option(help="Data home.")] = None,
    images: Annotated[Path | None, typer.Option(help="Stimulus image folder.")] = None,
) -> None:
    """Report which stimulus images of a subject's files are present.

    Example: [bold]e2e-recon check-data --subject sub-01[/]
    """
    from e2e_recon.data.fetching.download import check_data_cli

    check_data_cli(subject, home=dest, images_dir=images, console=console)
