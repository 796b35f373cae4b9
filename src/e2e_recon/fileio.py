"""Atomic file writing: outputs appear whole or not at all.

Everything the project writes goes to a temporary name in the destination's
folder first and is renamed over the destination only once complete, so an
interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from e2e_recon.errors import DataError, OutputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    The temporary name keeps the suffix of ``path`` (writers such as Pillow and
    ``scipy.io.savemat`` choose the format from it) and starts with a dot. On an
    exception the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:8]}.tmp{target.suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically; returns ``path``."""
    return atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def _nearest_existing(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute, or its nearest parent that exists."""
    folder = Path(path).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def free_space_text(path: str | os.PathLike[str]) -> str:
    """Free space on the file system of ``path`` (or its nearest existing parent)."""
    try:
        free: float = shutil.disk_usage(_nearest_existing(path)).free
    except OSError:
        return "free space unknown"
    for unit in ("B", "KB", "MB", "GB"):
        if free < 1000:
            return f"{free:.0f} {unit} free"
        free /= 1000
    return f"{free:.1f} TB free"


def output_error(folder: str | os.PathLike[str], exc: BaseException) -> OutputError:
    """One line for a failed write: the folder, the error and the free space there.

    The reason is the system's text for the error number when there is one (h5py's
    message spans several lines of library detail); a write failure reported without
    one (PyTorch raises ``RuntimeError("... unexpected pos ...")`` for a full disk) is
    said in plain words rather than quoting the library's internals.
    """
    errno_value = getattr(exc, "errno", None)
    if isinstance(exc, OSError) and errno_value:
        reason = os.strerror(errno_value)
    elif isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror.strip().splitlines()[0]
    else:
        reason = "the write failed (is the disk full?)"
    name = getattr(exc, "filename", None)
    where = f" ({Path(name).name})" if name else ""
    return OutputError(
        f"cannot write to {folder}{where}: {reason}; {free_space_text(folder)} there. "
        "Free some space, fix the folder's permissions, or choose another folder"
    )


#: errno values of a failed write the user can fix: full disk or quota, read-only
#: file system, no permission, file too large.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                          errno.EFBIG})  # fmt: skip


def check_writable(folder: str | os.PathLike[str], what: str = "output folder") -> None:
    """Refuse a folder (or, when it does not exist yet, its nearest parent) we cannot write.

    Raises
    ------
    OutputError
        Naming the folder, before anything is written.
    """
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise OutputError(f"{what} {folder}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(
            f"{what} {folder}: {existing} is read-only for this user; choose another folder"
        )


def is_write_failure(exc: BaseException) -> bool:
    """True for an ``OSError`` of a write the user can fix (disk full, read-only, ...)."""
    return isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS


@contextlib.contextmanager
def reporting_write_errors(
    folder: str | os.PathLike[str], any_oserror: bool = True
) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing into ``folder`` into one :class:`OutputError`.

    With ``any_oserror=False`` only write failures (:func:`is_write_failure`) are turned
    into an :class:`OutputError`: a missing input file read inside the block keeps its
    own error. The folder named is the failing file's when the error names one.
    """
    try:
        yield
    except OSError as exc:
        if not any_oserror and not is_write_failure(exc):
            raise
        where = Path(str(exc.filename)).parent if exc.filename else folder
        raise output_error(where, exc) from None


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a hidden sibling of ``target`` to write into; it replaces ``target`` on success.

    The sibling starts as a copy of ``target`` (hard links where possible: files are only
    ever replaced through :func:`atomic_path`, never changed in place), so a command can add
    to a folder that holds earlier results. On an exception the sibling is removed and
    ``target`` is left as it was: a failed command never leaves a half-written folder.
    A write failure (disk full, ...) is raised as one :class:`OutputError` naming ``target``.
    """
    shown = Path(target)
    target = shown.resolve()  # a link to a folder: stage beside the folder it names
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
    try:
        if target.is_dir():
            shutil.copytree(target, stage, symlinks=True, copy_function=_link_or_copy)
        else:
            stage.mkdir()
        yield stage
        if target.is_dir():
            target.rename(old)
        try:
            stage.rename(target)
        except OSError:
            if old.is_dir():
                old.rename(target)
            raise
    except OSError as exc:
        if not is_write_failure(exc):
            raise
        raise output_error(shown, exc) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# --------------------------------------------------------------------------------------------
# Names read from files (a set name in a header, a subject, a stimulus, a method) become
# parts of output paths: each is checked here before it is joined to a folder.
# --------------------------------------------------------------------------------------------

#: A name the user chooses for files (``import --subject`` / ``--set-name``).
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
#: Characters no file-name component may hold here: separators, a drive colon, the
#: characters Windows forbids (which include HTML's ``<``, ``>`` and ``"``), controls.
_UNSAFE_CHARS = re.compile(r'[/\\:<>"|?*\x00-\x1f\x7f]')


def safe_name(name: str, what: str, plain: bool = False, hint: str = "") -> str:
    """Return ``name`` when it can be one file or folder name inside an output folder.

    Parameters
    ----------
    name : str
        The name, as read from a file or typed by the user.
    what : str
        What it is and where it came from, for the message (``"set_name in the header
        of FILE"``, ``"--subject"``).
    plain : bool
        Allow only letters, digits, ``-`` and ``_`` (a leading letter or digit).
    hint : str
        What to do instead, appended to the message.

    Raises
    ------
    DataError
        ``name`` is empty, ``.`` or ``..``, starts with a dot, is over 120 characters, or
        holds a path separator, a drive colon, a control character or one of ``<>"|?*``
        (``plain``: anything beyond letters, digits, ``-`` and ``_``).
    """
    text = str(name)
    if plain:
        ok = PLAIN_NAME.fullmatch(text) is not None
        rule = "use letters, digits, '-' and '_', starting with a letter or digit"
    else:
        ok = bool(text) and not text.startswith(".") and not _UNSAFE_CHARS.search(text)
        rule = "a name without '/', '\\', ':', '<', '>', '\"', '|', '?', '*' or a leading '.'"
    if not ok or len(text) > 120:
        raise DataError(
            f"{what} {text!r} cannot name a file: {rule} (at most 120 characters)"
            + (f"; {hint}" if hint else "")
        )
    return text


def path_inside(path: str | os.PathLike[str], folder: str | os.PathLike[str], what: str) -> Path:
    """``folder / path`` when ``path`` is relative and stays inside ``folder``.

    Both are resolved first, symlinks included, so neither ``..`` nor a link on the way
    can lead elsewhere.

    Raises
    ------
    DataError
        ``path`` is absolute, or it leads outside ``folder``; ``what`` names where it
        was read (a row of ``index.csv``, say).
    """
    if Path(path).is_absolute():
        raise DataError(f"{what} {str(path)!r} is absolute; give a path relative to {folder}")
    base = Path(folder).resolve()
    target = (base / path).resolve()
    if target != base and base not in target.parents:
        raise DataError(f"{what} {str(path)!r} leads outside {folder}; it must stay inside it")
    return Path(folder) / path
