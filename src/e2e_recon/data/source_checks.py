"""Checked reading of import sources: the sizes arrays declare, before they are read.

A ``.npz``, ``.mat`` or NIfTI file states the shape and type of each array in a small
header, and a reader allocates that much memory before it finds out whether the
data is there. A file a few megabytes long can declare terabytes (a damaged or
hostile header) or hold gigabytes of compressed zeros. So each declared size is
checked, as the BData reader does (:mod:`e2e_recon.data.bdata_checks`), before
anything is read:

- against the bytes the file stores: an uncompressed array must fit in the file,
  a compressed one cannot expand more than :data:`MAX_COMPRESSION_RATIO` times;
- against the memory available: an import holds an array and a few float64 copies
  of it, and :data:`~e2e_recon.data.bdata_checks.MEMORY_SHARE` of the available
  memory is the most one source may take.

Every problem is a :class:`~e2e_recon.errors.DataError` naming the file, the array
and what is wrong.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from e2e_recon.data.bdata_checks import (
    MAX_COMPRESSION_RATIO,
    MEMORY_SHARE,
    available_memory_bytes,
)
from e2e_recon.errors import DataError

__all__ = [
    "COPY_BYTES",
    "Declared",
    "check_h5_dataset",
    "check_mat_v5",
    "check_memory",
    "check_npz",
    "check_stored",
]

#: Bytes an import holds per element beyond the array itself: the voxels and images
#: become float64 (conversion, the training/test cut and the written copy).
COPY_BYTES = 24

# Bytes per element of MATLAB classes, as ``scipy.io.whosmat`` names them.
_MAT_ITEMSIZE = {
    "double": 8, "single": 4, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2,
    "int32": 4, "uint32": 4, "int64": 8, "uint64": 8, "logical": 1, "char": 4,
}  # fmt: skip


class Declared:
    """What one array declares: where it is (for messages), its shape and bytes per element."""

    def __init__(self, where: str, shape: tuple[int, ...], itemsize: int) -> None:
        self.where = where
        self.shape = tuple(int(n) for n in shape)
        self.count = math.prod(self.shape)
        self.nbytes = self.count * int(itemsize)


def check_stored(declared: Declared, stored_bytes: int, compressed: bool) -> None:
    """Refuse an array that declares more data than the file can hold.

    Parameters
    ----------
    declared : the array's declared shape and size.
    stored_bytes : bytes the file stores for it (the compressed size when compressed).
    compressed : whether those bytes are deflated (then up to :data:`MAX_COMPRESSION_RATIO`
        times as much data may come out).
    """
    ratio = MAX_COMPRESSION_RATIO if compressed else 1
    if declared.nbytes > stored_bytes * ratio:
        held = "stores only" if not compressed else "stores"
        raise DataError(
            f"{declared.where} declares shape {declared.shape} ({declared.nbytes} bytes) but the "
            f"file {held} {stored_bytes} bytes of it{' compressed' if compressed else ''}; the "
            "file is truncated or damaged (write or copy it again)."
        )


def check_memory(arrays: Iterable[Declared], per_item: int = COPY_BYTES) -> None:
    """Refuse arrays that together would need more than the share of available memory.

    Each element is counted at its own size plus ``per_item`` bytes of working copies.
    """
    arrays = list(arrays)
    needed = sum(a.nbytes + a.count * per_item for a in arrays)
    available = available_memory_bytes()
    if available is None or needed <= MEMORY_SHARE * available:
        return
    largest = max(arrays, key=lambda a: a.nbytes)
    raise DataError(
        f"{largest.where} declares shape {largest.shape}: importing it needs about "
        f"{needed / 1e9:.1f} GB of memory but only {available / 1e9:.1f} GB is available. "
        "Free memory or use a machine with more; if the file should be small, it is damaged."
    )


def check_npz(path: Path) -> None:
    """Check the header of every member of a ``.npz`` against the archive and memory."""
    declared = []
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                where = f"{path}: {info.filename[:-4]}"
                with archive.open(info) as member:
                    shape, dtype, header_bytes = _npy_header(member, where)
                array = Declared(where, shape, dtype.itemsize)
                stored = max(0, info.file_size - header_bytes)
                check_stored(array, stored, compressed=False)
                if info.compress_type != zipfile.ZIP_STORED:
                    check_stored(array, info.compress_size, compressed=True)
                declared.append(array)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise DataError(f"Cannot read {path} ({type(err).__name__}: {err}).") from err
    check_memory(declared)


def _npy_header(member: Any, where: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header length) of one ``.npy`` member, its data not read."""
    fmt = np.lib.format
    version = fmt.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(member)
    else:
        raise DataError(f"{where}: .npy format version {version} is not supported.")
    return tuple(shape), np.dtype(dtype), int(member.tell())


def check_mat_v5(path: Path) -> None:
    """Check the arrays a MATLAB v5/v7 file declares (``scipy.io.whosmat``) before reading."""
    import scipy.io

    try:
        listing = scipy.io.whosmat(path)
    except Exception as err:  # scipy raises many types for a damaged file
        raise DataError(f"Cannot read {path} ({type(err).__name__}: {err}).") from err
    declared = [
        Declared(f"{path}: {name}", shape, _MAT_ITEMSIZE[cls])
        for name, shape, cls in listing
        if cls in _MAT_ITEMSIZE
    ]
    size = path.stat().st_size
    total = Declared(f"{path}", (sum(a.nbytes for a in declared),), 1)
    check_stored(total, size, compressed=True)  # v7 deflates each variable
    check_memory(declared)


def check_h5_dataset(node: Any, path: Path) -> Declared:
    """Check one HDF5 dataset (MATLAB v7.3 or plain HDF5) against the file; return its size."""
    where = f"{path}: {node.name}"
    itemsize = 16 if node.dtype.kind == "O" else node.dtype.itemsize  # references: small
    declared = Declared(where, node.shape or (), itemsize)
    if declared.count == 0:
        return declared
    try:
        stored = int(node.id.get_storage_size())
    except (RuntimeError, OSError, ValueError) as err:
        raise DataError(f"{where}: cannot read its layout ({err}).") from err
    check_stored(declared, stored, compressed=True)
    return declared
