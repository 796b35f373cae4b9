"""Refuse BData files whose objects live anywhere but inside the file itself.

HDF5 lets an object point elsewhere: an external link names an object in another
file (or in a FIFO, which blocks the reader for ever), a dataset with external
storage keeps its bytes in raw files beside it, a virtual dataset assembles its
values from other files, and a user-defined link is resolved by code the library
loads. None of these is part of a BData file, and each turns "read this file" into
"read whatever this file names", silently. So every link and every dataset of the
file is checked *without following anything* before a node is opened, and the first
non-local one is refused naming the file and the object.

Soft links stay allowed: once no external or user-defined link exists in the file,
a soft link can only resolve to an object of the same file.

A metadata key listed twice is refused here too: which of its two rows a selection
would use is arbitrary, so the file is ambiguous.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py

from e2e_recon.errors import DataError

__all__ = ["check_local_storage", "refuse_duplicate_keys"]

_LAYOUTS = {
    h5py.h5d.COMPACT: "compact",
    h5py.h5d.CONTIGUOUS: "contiguous",
    h5py.h5d.CHUNKED: "chunked",
}


def check_local_storage(h5: h5py.File, path: Path) -> None:
    """Raise DataError for the first link or dataset that reaches outside ``path``.

    Parameters
    ----------
    h5 : h5py.File
        The open file.
    path : Path
        The file, for messages.

    Raises
    ------
    DataError
        An external or user-defined link, a dataset with external storage, or a
        virtual (or otherwise non-local) dataset, named with the file.
    """
    try:
        _walk(h5, path, set())
    except DataError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, SystemError) as err:
        raise DataError(
            f"{path}: its objects cannot be listed ({err}); the file is damaged or not a "
            "BData file."
        ) from err


def _walk(group: h5py.Group, path: Path, seen: set[int]) -> None:
    """Check every link of ``group`` and below, following hard links only.

    A plain loop, not h5py's ``visititems``: an error inside a visit callback
    surfaces as an opaque SystemError.
    """
    seen.add(hash(group.id))  # equal for every link to the same object: loops end
    for name in list(group.keys()):
        link = group.get(name, getlink=True)
        where = f"{group.name.rstrip('/')}/{name}"
        _check_link(where, link, path)
        if not isinstance(link, h5py.HardLink):
            continue  # a soft link's target is checked where its own hard link is
        node = group[name]
        if isinstance(node, h5py.Dataset):
            _check_dataset(where, node, path)
        elif isinstance(node, h5py.Group) and hash(node.id) not in seen:
            _walk(node, path, seen)


def _check_link(name: str, link: Any, path: Path) -> None:
    if isinstance(link, h5py.ExternalLink):
        raise DataError(
            f"{path}: {name} is an external link to {link.path} in {link.filename!r}; BData "
            "files hold their data themselves: copy that object into the file instead."
        )
    if not isinstance(link, h5py.HardLink | h5py.SoftLink):
        raise DataError(
            f"{path}: {name} is a {type(link).__name__} (a user-defined link), which BData "
            "files do not use; the file is not a valid BData file."
        )


def _check_dataset(name: str, node: h5py.Dataset, path: Path) -> None:
    if node.external:
        files = ", ".join(repr(str(entry[0])) for entry in node.external)
        raise DataError(
            f"{path}: {name} keeps its values in external files ({files}); BData files hold "
            "their data themselves: rewrite it as an ordinary dataset."
        )
    layout = node.id.get_create_plist().get_layout()
    if layout not in _LAYOUTS:
        kind = "virtual" if layout == h5py.h5d.VIRTUAL else f"layout {layout}"
        raise DataError(
            f"{path}: {name} is a {kind} dataset (its values come from other files); BData "
            "files hold their data themselves: rewrite it as an ordinary dataset."
        )


def refuse_duplicate_keys(keys: list[str], path: Path) -> None:
    """Raise DataError naming both entries of the first metadata key listed twice."""
    seen: dict[str, int] = {}
    for index, key in enumerate(keys):
        if key in seen:
            raise DataError(
                f"{path}: metadata key {key!r} is listed twice (entries {seen[key] + 1} and "
                f"{index + 1} of metadata/key); the file is ambiguous: remove or rename one."
            )
        seen[key] = index
