"""Claiming a run folder for ``e2e-recon train``, and removing it when the run is refused.

A folder that already holds a run is never reused silently: a new run into it would
cut its ``stats.jsonl``, replace its ``config.yaml`` and ``generator.pt`` and mix
old snapshots with new ones. ``--resume`` continues it; ``--overwrite`` clears it
first, but only a folder the project marked as a run (``e2e-recon-run.json``), and
only the entries a run writes. A folder of the user's own is never written into or
emptied; a run made by an older version (no marker) can be resumed but is deleted
only by hand. A run refused before its first snapshot (missing data, an unusable
value) leaves no folder behind.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from e2e_recon.errors import CheckpointError, E2EReconError, OutputError, TrainingError
from e2e_recon.runs import RUN_MARKER, detach_log_file, is_marked_run

#: What a run writes at its top level; any of them marks a folder as holding a run.
RUN_MARKERS = ("config.yaml", "stats.jsonl", "checkpoints", "generator.pt", "best.pt", "log.txt")
#: Everything a run (or the demo) writes at its top level: all that ``--overwrite`` deletes.
RUN_ENTRIES = (RUN_MARKER, *RUN_MARKERS, "recon", "report", "tensorboard", "summary.json",
               "subject")  # fmt: skip
#: Temporary files of the atomic writers (``.NAME.1a2b3c4d.tmp.json``, ``.NAME.pt.PID.tmp``).
_TEMPORARY = re.compile(r"^\..+\.tmp(\.[A-Za-z0-9]+)?$")
#: What a run's folder holds before its first snapshot (see ``runs.init_run_dir``).
_FIRST_WRITTEN = (RUN_MARKER, "config.yaml", "log.txt", "stats.jsonl", "checkpoints", "recon",
                  "report")  # fmt: skip


def holds_run(folder: Path) -> bool:
    """True when ``folder`` has any file or folder a training run writes (marked or not)."""
    return folder.is_dir() and any((folder / name).exists() for name in RUN_MARKERS)


def claim_run_dir(folder: Path, overwrite: bool) -> None:
    """Accept a new or empty folder; refuse any other, or (``overwrite``) clear a marked run.

    Raises
    ------
    CheckpointError
        ``folder`` is a file; or it holds a run and ``overwrite`` is off; or it holds a
        run without the marker (made by an older version: resume it, or delete it by
        hand); or it holds anything else. Nothing is touched when it is refused.
    """
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"--run-dir {folder} is a file; give a folder")
    if not folder.exists() or not any(folder.iterdir()):
        return
    if is_marked_run(folder):
        if not overwrite:
            raise CheckpointError(
                f"--run-dir {folder} already holds a run; continue it with --resume {folder}, "
                "replace it with --overwrite (deletes the run's files), or give a new folder"
            )
        clear_folder(folder, run_entries(folder))
        return
    if holds_run(folder):
        raise CheckpointError(
            f"--run-dir {folder} already holds a run made by an older version (no {RUN_MARKER}),"
            f" which --overwrite never deletes; continue it with --resume {folder}, or delete "
            "it by hand to start anew, or give a new folder"
        )
    raise CheckpointError(
        f"--run-dir {folder} is not empty and is not a run folder (no {RUN_MARKER}); give a "
        "new or empty folder (nothing in this one was touched)"
    )


def run_entries(folder: Path) -> list[str]:
    """Names in ``folder`` that a run writes: :data:`RUN_ENTRIES` and its temporary files."""
    return [
        child.name
        for child in folder.iterdir()
        if child.name in RUN_ENTRIES or _TEMPORARY.match(child.name)
    ]


def clear_folder(folder: Path, names: Iterable[str]) -> None:
    """Delete ``names`` inside ``folder`` (the folder itself and anything else stay)."""
    detach_log_file(folder / "log.txt")
    for child in (folder / n for n in names):
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
