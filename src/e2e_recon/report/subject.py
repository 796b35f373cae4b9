"""Which subject a run is about, taken from its files the same way every time.

The lab's files carry the subject at the start of their names (``sub-04_...``); a
config's ``data.subject`` is ``sub-01`` unless it was set, so it names the subject
only when no file does. Training and test files that name different subjects are
said so, beside the subject.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e_recon.data.home import normalize_subject, subject_in_file_name
from e2e_recon.errors import DataError


@dataclass(frozen=True)
class SubjectStatement:
    """The subject a report names, where it came from, and any disagreement.

    Attributes
    ----------
    subject : str
        ``sub-04``; several joined by ", " when the files disagree.
    source : str
        Which names it was read from (``the test file names``).
    note : str or None
        Set when the training and test files (or the config) name different subjects.
    """

    subject: str
    source: str
    note: str | None = None

    @property
    def text(self) -> str:
        """One line for the page: the subject, where it came from, and the note."""
        line = f"{self.subject} (from {self.source})"
        return f"{line}\nNote: {self.note}" if self.note else line


def subject_of_file(path: str | Path | None) -> str | None:
    """The subject a file name starts with (:func:`subject_in_file_name`), ``sub-0N`` if numbered.

    ``sub-4_...h5`` and ``sub-04_...h5`` both read ``sub-04``; another label as written.
    """
    name = subject_in_file_name(path)
    if name is None:
        return None
    try:
        return normalize_subject(name)
    except DataError:
        return name


def subject_statement(data: Mapping[str, Any]) -> SubjectStatement:
    """The subject of a run's ``data`` settings: test file names, training file name, config.

    Parameters
    ----------
    data : mapping
        The ``data`` section of the run's config (``train_fmri``, ``train_fmri_subjects``
        of a shared run, ``test_fmri``, ``subject``).
    """
    # A shared run lists one training file per subject in train_fmri_subjects.
    train_files = [data.get("train_fmri"), *(data.get("train_fmri_subjects") or [])]
    trains = sorted({s for s in (subject_of_file(f) for f in train_files) if s})
    train = ", ".join(trains) or None
    tests_raw = data.get("test_fmri") or []
    tests_list: Sequence[Any] = [tests_raw] if isinstance(tests_raw, str) else tests_raw
    tests = sorted({s for s in (subject_of_file(t) for t in tests_list) if s})
    configured = str(data.get("subject") or "")
    named = sorted({*tests, *trains})
    if not named:
        return SubjectStatement(
            configured or "(not set)", "config.yaml data.subject; no file name carries a subject"
        )
    source = _source(train, tests)
    note = None
    if len(named) > 1 and not (trains and set(tests) <= set(trains)):
        note = (
            f"the training file names {train or 'no subject'} and the test files "
            f"{', '.join(tests) or 'none'}: the generator was trained on one subject and "
            "tested on another"
        )
    elif configured and configured != named[0]:
        note = (
            f"config.yaml data.subject is {configured} (its default unless set), "
            f"but the files name {named[0]}"
        )
    return SubjectStatement(", ".join(named), source, note)


def _source(train: str | None, tests: Sequence[str]) -> str:
    if train and tests:
        return "the training and test file names"
    if tests:
        return "the test file names; the training file's name carries no subject"
    return "the training file name; the test files' names carry no subject"
