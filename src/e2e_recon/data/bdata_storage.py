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
        links, datasets = _list(h5)
        for name, kind in links:
            _check_link(h5, name, kind, path)
        for name in datasets:
            _check_dataset(h5, name, path)
    except DataError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, SystemError) as err:
        raise DataError(
            f"{path}: its objects cannot be listed ({err}); the file is damaged or not a "
            "BData file."
        ) from err


def _list(h5: h5py.File) -> tuple[list[tuple[bytes, int]], list[bytes]]:
    """Every link (name, type) and every dataset's name, following hard links only.

    libhdf5's own visits (which end link loops), with callbacks that only collect:
    an error raised inside a visit callback would surface as an opaque SystemError.
    """
    links: list[tuple[bytes, int]] = []
    h5.id.links.visit(lambda name, info: links.append((name, info.type)), info=True)
    datasets: list[bytes] = []
    h5py.h5o.visit(
        h5.id,
        lambda name, info: datasets.append(name) if info.type == h5py.h5o.TYPE_DATASET else None,
        info=True,
    )
    return links, datasets


def _check_link(h5: h5py.File, name: bytes, kind: int, path: Path) -> None:
    where = "/" + name.decode("utf-8", errors="replace")
    if kind == h5py.h5l.TYPE_EXTERNAL:
        filename, target = (
            part.decode("utf-8", errors="replace") for part in h5.id.links.get_val(name)
        )
        raise DataError(
            f"{path}: {where} is an external link to {target} in {filename!r}; BData "
            "files hold their data themselves: copy that object into the file instead."
        )
    if kind not in (h5py.h5l.TYPE_HARD, h5py.h5l.TYPE_SOFT):
        raise DataError(
            f"{path}: {where} is a user-defined link (type {kind}), which BData files do not "
            "use; the file is not a valid BData file."
        )


def _check_dataset(h5: h5py.File, name: bytes, path: Path) -> None:
    where = "/" + name.decode("utf-8", errors="replace")
    plist = h5py.h5d.open(h5.id, name).get_create_plist()
    if plist.get_external_count():
        files = ", ".join(
            repr(plist.get_external(i)[0].decode("utf-8", errors="replace"))
            for i in range(plist.get_external_count())
        )
        raise DataError(
            f"{path}: {where} keeps its values in external files ({files}); BData files hold "
            "their data themselves: rewrite it as an ordinary dataset."
        )
    layout = plist.get_layout()
    if layout not in _LAYOUTS:
        kind = "virtual" if layout == h5py.h5d.VIRTUAL else f"layout {layout}"
        raise DataError(
            f"{path}: {where} is a {kind} dataset (its values come from other files); BData "
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
