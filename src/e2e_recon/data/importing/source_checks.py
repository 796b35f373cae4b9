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
import struct
import zipfile
import zlib
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

# MATLAB v5 data element types and the bytes per element of each numeric array class
# (char: 4, as numpy's str); cells, structs, objects and sparse arrays are not counted.
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_MAT_CLASS_ITEMSIZE = {4: 4, 6: 8, 7: 4, 8: 1, 9: 1, 10: 2, 11: 2, 12: 4, 13: 4, 14: 8, 15: 8}


class Declared:
    """What one array declares: where it is (for messages), its shape and bytes per element."""

    def __init__(self, where: str, shape: tuple[int, ...], itemsize: int) -> None:
        self.where = where
        self.shape = tuple(int(n) for n in shape)
        self.count = math.prod(self.shape)
        self.itemsize = int(itemsize)
        self.nbytes = self.count * self.itemsize


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
            f"{declared.where} declares shape {declared.shape} ({declared.count} values) but "
            f"the file {held} {stored_bytes} bytes of it{' compressed' if compressed else ''}; "
            "the file is truncated or damaged (write or copy it again)."
        )


def check_memory(arrays: Iterable[Declared], per_item: int | None = None) -> None:
    """Refuse arrays that together would need more than the share of available memory.

    Each element is counted at its own size plus ``per_item`` bytes of working copies;
    by default :data:`COPY_BYTES` (numbers that become float64: voxels, float images),
    and three times its size for one-byte arrays (uint8 images and masks stay uint8).
    """
    arrays = list(arrays)
    needed = 0
    for a in arrays:
        extra = per_item if per_item is not None else (COPY_BYTES if a.itemsize > 1 else 3)
        needed += a.nbytes + a.count * extra
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
                    header = _npy_header(member)
                if header is None:  # a format version this check does not read: numpy's
                    continue
                shape, dtype, header_bytes = header
                array = Declared(where, shape, dtype.itemsize)
                stored = max(0, info.file_size - header_bytes)
                check_stored(array, stored, compressed=False)
                if info.compress_type != zipfile.ZIP_STORED:
                    check_stored(array, info.compress_size, compressed=True)
                declared.append(array)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise DataError(f"Cannot read {path} ({type(err).__name__}: {err}).") from err
    check_memory(declared)


def _npy_header(member: Any) -> tuple[tuple[int, ...], np.dtype, int] | None:
    """(shape, dtype, header length) of one ``.npy`` member, its data not read.

    None for a format version other than 1.0 and 2.0 (3.0 differs only in allowing
    UTF-8 field names); numpy then reads the member unchecked.
    """
    fmt = np.lib.format
    version = fmt.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(member)
    else:
        return None
    return tuple(shape), np.dtype(dtype), int(member.tell())


def check_mat_v5(path: Path) -> None:
    """Check the arrays a MATLAB v5/v7 file declares before ``scipy.io.loadmat`` reads them.

    Only each variable's header is read (the first bytes of a compressed one), so the check
    costs nothing however much the file declares. A variable whose header this reader does
    not follow (an unusual writer) is left to scipy unchecked.
    """
    size = path.stat().st_size
    declared = []
    for name, shape, itemsize, stored, compressed in _mat_v5_headers(path, size):
        where = f"{path}: {name}"
        # MATLAB may store values in a smaller type (doubles as uint8, text as UTF-8): at
        # least one byte per element, before compression.
        check_stored(Declared(where, shape, 1), stored, compressed)
        declared.append(Declared(where, shape, itemsize))
    check_memory(declared)


def _mat_v5_headers(path: Path, size: int) -> list[tuple[str, tuple[int, ...], int, int, bool]]:
    """(name, shape, bytes per element, stored bytes, compressed) of each numeric variable."""
    out = []
    with open(path, "rb") as handle:
        head = handle.read(128)
        endian = "<" if head[126:128] == b"IM" else ">"
        pos = 128
        while pos + 8 <= size:
            handle.seek(pos)
            kind, nbytes = struct.unpack(endian + "II", handle.read(8))
            if kind == _MI_COMPRESSED:
                inflater = zlib.decompressobj()
                try:
                    matrix = inflater.decompress(handle.read(min(nbytes, 4096)), 512)
                except zlib.error:
                    matrix = b""
            else:
                matrix = struct.pack(endian + "II", kind, nbytes) + handle.read(min(nbytes, 512))
            stored = min(nbytes, size - pos - 8)
            parsed = _matrix_header(matrix, endian)
            if parsed is not None:
                out.append((*parsed, stored, kind == _MI_COMPRESSED))
            pos += 8 + nbytes + (0 if kind == _MI_COMPRESSED else -nbytes % 8)
    return out


def _matrix_header(buf: bytes, endian: str) -> tuple[str, tuple[int, ...], int] | None:
    """(name, shape, itemsize) of a miMATRIX element's header, None if not a plain array."""
    try:
        kind, _, _, _, flags, _ = struct.unpack(endian + "IIIIII", buf[:24])
        itemsize = _MAT_CLASS_ITEMSIZE.get(flags & 0xFF)
        if kind != _MI_MATRIX or itemsize is None:
            return None
        if flags & 0x800:  # complex: a real and an imaginary part
            itemsize *= 2
        _, dims_bytes = struct.unpack(endian + "II", buf[24:32])
        shape = struct.unpack(endian + "i" * (dims_bytes // 4), buf[32 : 32 + dims_bytes])
        at = 32 + dims_bytes + (-dims_bytes % 8)
        name_tag = struct.unpack(endian + "I", buf[at : at + 4])[0]
        if name_tag >> 16:  # a small element: the name in the tag's last 4 bytes
            name = buf[at + 4 : at + 4 + (name_tag >> 16)]
        else:
            length = struct.unpack(endian + "I", buf[at + 4 : at + 8])[0]
            name = buf[at + 8 : at + 8 + length]
    except struct.error:
        return None
    if any(n < 0 for n in shape):
        return None
    return name.decode("latin-1"), tuple(shape), itemsize


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
