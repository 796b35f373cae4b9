"""Glue between command-line options and the config tree.

Kept out of ``cli.py`` so that it can be tested without Typer and reused by the
demo and the experiments.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from e2e_recon.config import Config, dump_yaml, load_config
from e2e_recon.errors import ConfigError
from e2e_recon.runs import init_run_dir, next_run_dir, require_run_dir


def path_overrides(
    train_fmri: Path | None,
    test_fmri: Sequence[Path] | None,
    images: Path | None,
    device: str,
) -> list[str]:
    """Config overrides for the path and device options of the command line."""
    items: list[str] = []
    if train_fmri is not None:
        items.append(f"data.train_fmri={_quoted(train_fmri)}")
    if test_fmri:
        items.append("data.test_fmri=[" + ", ".join(_quoted(p) for p in test_fmri) + "]")
    if images is not None:
        items.append(f"data.images_dir={_quoted(images)}")
    if device:
        items.append(f"train.device={device}")
    return items


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def prepare_train(
    config: str,
    overrides: Sequence[str],
    train_fmri: Path | None,
    test_fmri: Sequence[Path] | None,
    images: Path | None,
    device: str,
    runs_dir: Path,
    run_dir: Path | None,
    resume: Path | None,
    dry_run: bool,
    console: Console | None = None,
) -> tuple[Config, Path | None]:
    """Resolve the config of a training run and lay out its directory.

    Returns the config and the run directory, or ``None`` for the directory when
    ``dry_run`` is set (the config is printed and nothing is written). A resumed
    run takes the config saved in its folder; overrides still apply on top.
    """
    console = console or Console()
    extra = [*path_overrides(train_fmri, test_fmri, images, device), *overrides]
    if resume is not None:
        cfg = load_config(require_run_dir(resume) / "config.yaml", extra)
    else:
        cfg = load_config(config, extra)
    if dry_run:
        console.print(dump_yaml(cfg), end="", highlight=False, markup=False)
        return cfg, None
    if resume is not None:
        return cfg, init_run_dir(resume, cfg)
    if run_dir is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Each process would number a folder of its own: all ranks must share one.
        raise ConfigError(
            "under torchrun give the run folder explicitly: --run-dir runs/NAME "
            "(every process must write to the same one)"
        )
    target = run_dir or next_run_dir(runs_dir, cfg.data.subject, cfg.name)
    return cfg, init_run_dir(target, cfg)
