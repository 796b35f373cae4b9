"""Rules of a simulated experiment with several subjects, shared by both simulator families.

No encoding model here: subject names, the allowed number of subjects, how much a
subject's voxel count varies, the names of a subject's random streams, and the
build-under-a-temporary-name-then-rename of the output folder.

Layout of ``simulate --subjects N`` (N > 1)::

    DIR/images/<set>/<name>.<ext>       the stimuli, written once (the same for all)
    DIR/fmri/sub-01_<session>_original_VC.h5
    DIR/fmri/sub-02_<session>_original_VC.h5   ... side by side, as in the real data
    DIR/truth/sub-01/ ...               each subject's noiseless responses, encoding model
    DIR/truth/summary.json              the experiment's summary (every subject)
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from e2e_recon.errors import ConfigError, DataError

__all__ = [
    "MAX_SUBJECTS",
    "VOXEL_SPREAD",
    "building_folder",
    "check_out_dir",
    "check_snr",
    "check_subjects",
    "experiment_summary",
    "subject_names",
    "subject_stream",
    "voxel_count",
]

MAX_SUBJECTS = 99  # names are zero-padded to two digits
#: A subject's voxel count is the preset's times a uniform draw in 1 +- this.
VOXEL_SPREAD = 0.2


def check_subjects(n_subjects: int, subject: str | None) -> None:
    """Raise :class:`ConfigError` for a bad ``--subjects`` or a ``--subject`` name with N > 1."""
    if isinstance(n_subjects, bool) or not isinstance(n_subjects, int | np.integer):
        raise ConfigError(f"--subjects must be a whole number, got {n_subjects!r}.")
    if not 1 <= n_subjects <= MAX_SUBJECTS:
        raise ConfigError(f"--subjects must be between 1 and {MAX_SUBJECTS}, got {n_subjects}.")
    if n_subjects > 1 and subject is not None:
        raise ConfigError(
            f"--subject {subject} names a single subject; with --subjects {n_subjects} the "
            "subjects are named sub-01, sub-02, ...: leave --subject out."
        )


def check_snr(snr: float | None) -> None:
    """``None`` (the family's default) or a positive finite number."""
    if snr is not None and not (np.isfinite(snr) and snr > 0):
        raise ConfigError(f"--snr must be a positive number, got {snr!r}.")


def check_out_dir(out: Path, overwrite: bool) -> None:
    """The output folder must not exist, or be an empty folder; ``overwrite`` replaces
    only a folder a simulation wrote (``truth/summary.json``), never a user's own."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a folder; choose another --out.")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise DataError(
                f"{out} already exists and is not empty; choose another --out or delete it."
            )
        if not (out / "truth" / "summary.json").is_file():  # only a simulated subject
            raise DataError(
                f"{out} is not a simulated subject (no truth/summary.json), so it is never "
                "replaced; choose another --out or delete it by hand."
            )


def subject_names(n_subjects: int) -> list[str]:
    """``["sub-01", "sub-02", ...]``."""
    return [f"sub-{k:02d}" for k in range(1, n_subjects + 1)]


def subject_stream(name: str) -> str:
    """Prefix of a subject's own random streams in an experiment of several subjects."""
    return f"{name}/"


def voxel_count(n_voxels: int, rng: np.random.Generator) -> int:
    """A subject's voxel count: ``n_voxels`` times a uniform draw in ``1 +- VOXEL_SPREAD``."""
    return max(1, round(n_voxels * rng.uniform(1 - VOXEL_SPREAD, 1 + VOXEL_SPREAD)))


@contextlib.contextmanager
def building_folder(out: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``out`` to build in; rename it to ``out`` on success.

    On any error (or an interrupt) the temporary folder is removed and ``out`` is left
    as it was, so no half-written experiment is ever seen under ``out``.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def experiment_summary(
    out: Path, preset: str, family: str, seed: int, snr: float, subjects: dict[str, Any]
) -> dict[str, Any]:
    """The summary of an experiment of several subjects (both families), ``truth/summary.json``."""
    return {
        "preset": preset,
        "family": family,
        "seed": seed,
        "snr": snr,
        "n_subjects": len(subjects),
        "schedule": "shared: every subject saw the same trials in the same order",
        "out_dir": str(out),
        "images_dir": str(out / "images"),
        "truth_dir": str(out / "truth"),
        "subjects": subjects,
    }
