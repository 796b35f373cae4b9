"""Claiming a run folder for ``e2e-recon train``, and removing it when the run is refused.

A folder that already holds a run is never reused silently: a new run into it would
cut its ``stats.jsonl``, replace its ``config.yaml`` and ``generator.pt`` and mix
old snapshots with new ones. ``--resume`` continues it; ``--overwrite`` clears it
first. A run refused before its first snapshot (missing data, an unusable value)
leaves no folder behind.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from e2e_recon.errors import CheckpointError, E2EReconError, OutputError, TrainingError
from e2e_recon.runs import detach_log_file

#: What a run writes at its top level; any of them marks a folder as holding a run.
RUN_MARKERS = ("config.yaml", "stats.jsonl", "checkpoints", "generator.pt", "best.pt", "log.txt")
#: What a run's folder holds before its first snapshot (see ``runs.init_run_dir``).
_FIRST_WRITTEN = ("config.yaml", "log.txt", "stats.jsonl", "checkpoints", "recon", "report")


def holds_run(folder: Path) -> bool:
    """True when ``folder`` has any file or folder a training run writes."""
    return folder.is_dir() and any((folder / name).exists() for name in RUN_MARKERS)


def claim_run_dir(folder: Path, overwrite: bool) -> None:
    """Refuse a folder that already holds a run, or (``overwrite``) clear it first.

    Raises
    ------
    CheckpointError
        ``folder`` holds a run and ``overwrite`` is off, or ``folder`` is a file. A
        folder without a run is used as it is (its other files are never deleted).
    """
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"--run-dir {folder} is a file; give a folder")
    if not holds_run(folder):
        return
    if not overwrite:
        raise CheckpointError(
            f"--run-dir {folder} already holds a run; continue it with --resume {folder}, "
            "replace it with --overwrite, or give a new folder"
        )
    clear_folder(folder)


def clear_folder(folder: Path, names: Iterable[str] | None = None) -> None:
    """Delete everything inside ``folder``, or only ``names`` (the folder itself stays)."""
    detach_log_file(folder / "log.txt")
    children = folder.iterdir() if names is None else (folder / n for n in names)
    for child in children:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        elif child.exists() or child.is_symlink():
            child.unlink()


def has_snapshot(folder: Path) -> bool:
    """True once a run in ``folder`` has written a snapshot (then it is kept, whatever happens)."""
    checkpoints = folder / "checkpoints"
    return checkpoints.is_dir() and any(checkpoints.glob("*.pt"))


@contextlib.contextmanager
def removed_if_refused(folder: Path, created: bool) -> Iterator[None]:
    """Remove a new run's folder (or what the run put in a given one) when it is refused.

    A refusal is a project error before the first snapshot, other than a failed write
    (:class:`OutputError`, whose message names the folder) or a failed training
    (:class:`TrainingError`, which keeps its snapshot).
    """
    try:
        yield
    except E2EReconError as exc:
        if not isinstance(exc, OutputError | TrainingError) and not has_snapshot(folder):
            with contextlib.suppress(OSError):
                if created:
                    detach_log_file(folder / "log.txt")
                    shutil.rmtree(folder)
                else:
                    clear_folder(folder, _FIRST_WRITTEN)
        raise
