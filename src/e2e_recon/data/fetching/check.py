"""``e2e-recon check-data``: which stimulus images of a subject are in place.

The stimulus images are not downloadable (the lab gives them on request), so
after ``e2e-recon download fmri`` this check reads every stimulus id from each of
the subject's BData files and looks for ``<name>.<image extension>`` in the
matching folder of the image home (``HOME/images/training/``, ``test/``,
``artificial/``, ``letters/``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from e2e_recon.data.bdata import BData
from e2e_recon.data.home import (
    IMAGES_DIR,
    SESSIONS,
    data_home,
    normalize_subject,
    resolve_subject_files,
)
from e2e_recon.data.labels import IMAGE_SUFFIXES, id_to_name, stimulus_ids_of

SHOWN_MISSING = 10


def stimulus_names(path: Path) -> list[str]:
    """The distinct stimulus names of a BData file, in first-seen order.

    The id comes from the ``stimulus_id`` key when the file has one, else from
    ``Label`` (its second column when it has several, as the reference code reads it).
    """
    unique_ids = list(dict.fromkeys(stimulus_ids_of(BData(path)).tolist()))
    return [id_to_name(float(stim_id)) for stim_id in unique_ids]


def _image_stems(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    return {
        Path(entry.name).stem
        for entry in os.scandir(folder)
        if entry.is_file() and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES
    }


def _check_session(fmri: Path, folder: Path) -> dict[str, Any]:
    names = stimulus_names(fmri)
    present = _image_stems(folder)
    missing = [name for name in names if name not in present]
    return {
        "fmri": str(fmri),
        "images_dir": str(folder),
        "n_stimuli": len(names),
        "n_present": len(names) - len(missing),
        "n_missing": len(missing),
        "first_missing": missing[:SHOWN_MISSING],
    }


def check_data(
    subject: str,
    home: str | os.PathLike[str] | None = None,
    images_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Report, for every stimulus in a subject's fMRI files, whether its image is present.

    Parameters
    ----------
    subject : str
        "sub-01" (or "1").
    home : path, optional
        Data home (``--dest``); default as in :func:`e2e_recon.data.home.data_home`.
    images_dir : path, optional
        Image root with ``training/``, ``test/``, ``artificial/``, ``letters/``
        sub-folders (a session without its sub-folder is looked up in the root
        itself); default ``HOME/images``.

    Returns
    -------
    dict
        ``subject``, ``home``, ``images_dir``, ``sessions`` (session key -> None when
        the subject has no fMRI file for it, else ``fmri``, ``images_dir``,
        ``n_stimuli``, ``n_present``, ``n_missing``, ``first_missing``), ``complete``
        (every stimulus of every present file has its image) and ``lines`` (a
        readable report, one line per session plus advice).
    """
    subject = normalize_subject(subject)
    root = data_home(home)
    images_root = Path(images_dir) if images_dir is not None else root / IMAGES_DIR
    files = resolve_subject_files(subject, root)
    sessions: dict[str, dict[str, Any] | None] = {}
    for key in SESSIONS:
        fmri = files[key]
        if fmri is None:
            sessions[key] = None
            continue
        folder = images_root / key if (images_root / key).is_dir() else images_root
        sessions[key] = _check_session(fmri, folder)
    checked = [report for report in sessions.values() if report is not None]
    complete = bool(checked) and all(report["n_missing"] == 0 for report in checked)
    result: dict[str, Any] = {
        "subject": subject,
        "home": str(root),
        "images_dir": str(images_root),
        "sessions": sessions,
        "complete": complete,
    }
    result["lines"] = report_lines(result)
    return result


def report_lines(result: dict[str, Any]) -> list[str]:
    """Human-readable lines of a :func:`check_data` result."""
    subject, lines = result["subject"], []
    for key, report in result["sessions"].items():
        if report is None:
            lines.append(f"{key}: no fMRI file for {subject}")
            continue
        line = (
            f"{key}: {report['n_present']}/{report['n_stimuli']} images present "
            f"in {report['images_dir']}"
        )
        if report["n_missing"]:
            shown = ", ".join(report["first_missing"])
            more = " ..." if report["n_missing"] > len(report["first_missing"]) else ""
            line += f"; missing {report['n_missing']}: {shown}{more}"
        lines.append(line)
    if all(report is None for report in result["sessions"].values()):
        lines.append(
            f"no fMRI files for {subject} in {result['home']}: run "
            f"`e2e-recon download fmri --subject {subject}`"
        )
    elif not result["complete"]:
        lines.append(
            "put each stimulus image in the session's folder named by stimulus "
            "(n01518878_5958.JPEG, any image extension); the images come from the lab on "
            "request (see `e2e-recon download --help`)"
        )
    return lines
