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
from e2e_recon.errors import ConfigError, DataError
from e2e_recon.fileio import check_writable
from e2e_recon.run_folder import claim_run_dir
from e2e_recon.runs import init_run_dir, next_run_dir, require_run_dir


def path_overrides(
    train_fmri: Path | Sequence[Path] | None,
    test_fmri: Sequence[Path] | None,
    images: Path | None,
    device: str,
    subjects: Sequence[str] = (),
    adapt_from: str = "",
    source_fmri: Sequence[Path] = (),
) -> list[str]:
    """Config overrides for the path and device options of the command line.

    Several training files (one per subject, for a shared run) go to
    ``data.train_fmri_subjects``; one goes to ``data.train_fmri`` as always.
    """
    items: list[str] = []
    files = [train_fmri] if isinstance(train_fmri, Path) else list(train_fmri or [])
    if len(files) == 1:
        items.append(f"data.train_fmri={_quoted(files[0])}")
    elif files:
        items.append("data.train_fmri_subjects=[" + ", ".join(_quoted(p) for p in files) + "]")
    if subjects:
        items.append("data.subjects=[" + ", ".join(_quoted(Path(s)) for s in subjects) + "]")
        if len(subjects) == 1:  # the run folder's name and data.subject follow
            items.append(f"data.subject={_quoted(Path(subjects[0]))}")
    if adapt_from:
        items.append(f"train.adapt_from={_quoted(Path(adapt_from))}")
    if source_fmri:
        items.append("train.adapt_source_fmri=[" + ", ".join(_quoted(p) for p in source_fmri) + "]")
    if test_fmri:
        items.append("data.test_fmri=[" + ", ".join(_quoted(p) for p in test_fmri) + "]")
    if images is not None:
        items.append(f"data.images_dir={_quoted(images)}")
    if device:
        items.append(f"train.device={device}")
    return items


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def check_input_files(cfg: Config) -> None:
    """Check the run's BData files (structure and metadata, in a child process) now.

    Called before a run folder is made or touched, so that a missing, malformed or
    damaged file (even one that hangs or crashes libhdf5) leaves nothing behind.
    """
    from e2e_recon.data.h5probe import check_file

    for option, path in _input_files(cfg):
        try:
            check_file(path)
        except DataError as error:  # the check's message, with the option that gave the file
            raise DataError(f"{option}: {error}") from None


def _input_files(cfg: Config) -> list[tuple[str, str]]:
    """(option, path) of every BData file a run reads, named by its command-line option."""
    training = list(cfg.data.train_fmri_subjects) or [cfg.data.train_fmri]
    return [
        *(("--train-fmri (data.train_fmri)", p) for p in training if p),
        *(("--test-fmri (data.test_fmri)", p) for p in cfg.data.test_fmri if p),
        *(("--source-fmri (train.adapt_source_fmri)", p) for p in cfg.train.adapt_source_fmri if p),
    ]


def prepare_train(
    config: str,
    overrides: Sequence[str],
    train_fmri: Path | Sequence[Path] | None,
    test_fmri: Sequence[Path] | None,
    images: Path | None,
    device: str,
    runs_dir: Path,
    run_dir: Path | None,
    resume: Path | None,
    dry_run: bool,
    console: Console | None = None,
    overwrite: bool = False,
    subjects: Sequence[str] = (),
    adapt_from: str = "",
    source_fmri: Sequence[Path] = (),
) -> tuple[Config, Path | None, bool]:
    """Resolve the config of a training run, check it, and lay out its directory.

    Returns the config, the run directory (``None`` when ``dry_run`` is set: the
    config is printed and nothing is written) and whether the directory was created
    here. A resumed run takes the config saved in its folder; overrides still apply
    on top. Every value, the input BData files and the output folder are checked
    before anything is written; ``run_dir`` holding a run is refused unless
    ``overwrite`` (which clears it).
    """
    from e2e_recon.train.setup import check_supported

    console = console or Console()
    extra = [
        *path_overrides(train_fmri, test_fmri, images, device, subjects, adapt_from, source_fmri),
        *overrides,
    ]
    if resume is not None:
        cfg = load_config(require_run_dir(resume) / "config.yaml", extra)
    else:
        cfg = load_config(config, extra)
    if dry_run:
        console.print(dump_yaml(cfg), end="", highlight=False, markup=False)
        return cfg, None, False
    check_supported(cfg, warnings=False)  # refused before any folder is made; train() warns
    check_input_files(cfg)
    if resume is not None:
        check_writable(resume, "run folder")
        return cfg, init_run_dir(resume, cfg), False
    if run_dir is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Each process would number a folder of its own: all ranks must share one.
        raise ConfigError(
            "under torchrun give the run folder explicitly: --run-dir runs/NAME "
            "(every process must write to the same one)"
        )
    if run_dir is None:
        check_writable(runs_dir, "runs folder")
        return cfg, init_run_dir(next_run_dir(runs_dir, _run_label(cfg), cfg.name), cfg), True
    check_writable(run_dir, "run folder")
    if int(os.environ.get("RANK", "0")) != 0:
        return cfg, run_dir, False  # rank 0 claims and lays out the shared folder
    created = not run_dir.exists()
    claim_run_dir(run_dir, overwrite)
    return cfg, init_run_dir(run_dir, cfg), created


def _run_label(cfg: Config) -> str:
    """The subject part of a numbered run folder's name: every subject of a shared run, the
    new subject of an adapted one (from its file name unless --subject named it)."""
    from e2e_recon.data.home import subject_in_file_name
    from e2e_recon.train.multi_config import subject_files

    if cfg.model.shared:
        return "-".join(name for name, _ in subject_files(cfg))
    if cfg.train.adapt_from and not cfg.data.subjects:
        return subject_in_file_name(cfg.data.train_fmri) or cfg.data.subject
    return cfg.data.subject
