"""Checked reading of BData HDF5 files: structure and sizes first, then the arrays.

A BData file comes from outside (a download, a colleague, a MATLAB script), so
nothing in it is trusted: each node is checked to be what the format says (a
group or a dataset, with a numeric or string type and the expected number of
dimensions), and the size a dataset declares is checked against what the file
actually stores and against the memory available *before* it is read. A file
declaring a billion variable-length keys in a few kilobytes is refused at once
instead of growing the process until the system kills it.

Every problem is raised as a :class:`~e2e_recon.errors.DataError` naming the
file, the node and what is wrong.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from e2e_recon.data.bdata_storage import check_local_storage, refuse_duplicate_keys
from e2e_recon.errors import DataError

__all__ = [
    "BDataContent",
    "available_memory_bytes",
    "check_declared_size",
    "child",
    "read_array",
    "read_bdata",
    "read_strings",
    "require_dataset",
    "require_group",
]

#: Share of the available memory one file may take; the rest is left for the caller.
MEMORY_SHARE = 0.8

#: Bytes one variable-length string takes in memory once read: the pointer of an
#: object array plus a small Python ``bytes`` object (measured: about 40-100 bytes).
VLEN_ITEM_BYTES = 112

#: Bytes one variable-length element occupies in a file before compression (the
#: HDF5 descriptor: length and global-heap id).
VLEN_STORED_BYTES = 16

#: Deflate, the strongest compressor HDF5 files use, shrinks data at most about
#: 1032:1; a dataset declaring more than this many times its stored bytes cannot
#: be holding its data (its chunks were never written).
MAX_COMPRESSION_RATIO = 2048

#: MATLAB character codes: Unicode code points, without the surrogate range.
_MAX_CODE_POINT = 0x10FFFF
_SURROGATES = (0xD800, 0xDFFF)

_NUMERIC_KINDS = "fiub"


def available_memory_bytes() -> int | None:
    """Memory this process can still allocate, in bytes, or None when unknown.

    The smaller of the system's available memory (``MemAvailable`` in
    ``/proc/meminfo``) and the room left under an address-space limit
    (``ulimit -v``). None on systems without ``/proc``.
    """
    limits = []
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append(max(0, soft - _address_space_used()))
    return min(limits) if limits else None


def _address_space_used() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _where(path: Path, node: Any) -> str:
    name = getattr(node, "name", None) or "?"
    return f"{path}: {name}"


def child(group: h5py.Group, name: str, path: Path) -> Any | None:
    """The member ``name`` of ``group``, or None when absent.

    A dangling or looping link, or a damaged object header, is a DataError rather
    than h5py's KeyError or RuntimeError.
    """
    try:
        if name not in group:
            return None
        return group[name]
    except (KeyError, RuntimeError, OSError, ValueError) as err:
        raise DataError(
            f"{path}: {group.name.rstrip('/')}/{name} cannot be opened ({err}); the file is "
            "damaged or not a BData file."
        ) from err


def require_group(node: Any, path: Path, what: str) -> h5py.Group:
    """Check that ``node`` is an HDF5 group; ``what`` names it in the message."""
    if not isinstance(node, h5py.Group):
        raise DataError(
            f"{_where(path, node)} ({what}) is a {_kind(node)} where BData has a group; "
            "the file is not a valid BData file."
        )
    return node


def require_dataset(
    node: Any, path: Path, what: str, ndims: tuple[int, ...], strings: bool = False
) -> h5py.Dataset:
    """Check that ``node`` is a dataset with an allowed type and number of dimensions.

    Parameters
    ----------
    node : h5py object
    path : Path
        The file, for messages.
    what : str
        What the node holds ("the data array", "metadata keys"), for messages.
    ndims : tuple of int
        Allowed numbers of dimensions.
    strings : bool
        Also allow strings, MATLAB character codes and object references.
    """
    if not isinstance(node, h5py.Dataset):
        raise DataError(
            f"{_where(path, node)} ({what}) is a {_kind(node)} where BData has a dataset; "
            "the file is not a valid BData file."
        )
    kind = node.dtype.kind
    allowed = kind in _NUMERIC_KINDS or (strings and _is_string_like(node.dtype))
    if not allowed:
        raise DataError(
            f"{_where(path, node)} ({what}) has type {node.dtype}, which BData does not use; "
            "the file is not a valid BData file."
        )
    if node.ndim not in ndims:
        shown = " or ".join(str(n) for n in ndims)
        raise DataError(
            f"{_where(path, node)} ({what}) has {node.ndim} dimensions {node.shape}; BData "
            f"stores it with {shown}. The file is not a valid BData file."
        )
    return node


def _is_string_like(dtype: np.dtype) -> bool:
    if dtype.kind in "SU":
        return True
    if dtype.kind != "O":
        return False
    return (
        h5py.check_dtype(ref=dtype) is not None
        or h5py.check_string_dtype(dtype) is not None
        or h5py.check_vlen_dtype(dtype) is not None
    )


def _kind(node: Any) -> str:
    if isinstance(node, h5py.Dataset):
        return "dataset"
    if isinstance(node, h5py.Group):
        return "group"
    return type(node).__name__


def _item_bytes(node: h5py.Dataset) -> tuple[int, int]:
    """(bytes per element in memory once read as this project reads it, in the file)."""
    if node.dtype.kind == "O":
        return VLEN_ITEM_BYTES, VLEN_STORED_BYTES
    # Numbers are read, then converted to float64 and made contiguous: up to 3 copies.
    return node.dtype.itemsize + 16, node.dtype.itemsize


def check_declared_size(node: h5py.Dataset, path: Path, what: str) -> None:
    """Refuse a dataset whose declared size the file cannot hold or memory cannot take.

    Raises
    ------
    DataError
        When the declared data is far larger than what the file stores (unwritten
        chunks: the declared size is not real), or when reading it would need more
        than :data:`MEMORY_SHARE` of the available memory.
    """
    count = int(node.size)
    if count == 0:
        return
    memory_per_item, stored_per_item = _item_bytes(node)
    stored = _storage_bytes(node, path, what)
    if stored * MAX_COMPRESSION_RATIO < count * stored_per_item:
        raise DataError(
            f"{_where(path, node)} ({what}) declares shape {node.shape} ({count} values) but the "
            f"file stores only {stored} bytes of it; the file is damaged or not a BData file."
        )
    needed = count * memory_per_item
    available = available_memory_bytes()
    if available is not None and needed > MEMORY_SHARE * available:
        raise DataError(
            f"{_where(path, node)} ({what}) declares shape {node.shape}, about "
            f"{needed / 1e9:.1f} GB in memory, but only {available / 1e9:.1f} GB is available. "
            "Free memory or use a machine with more; if the file should be small, it is damaged."
        )


def _storage_bytes(node: h5py.Dataset, path: Path, what: str) -> int:
    try:
        return int(node.id.get_storage_size())
    except (RuntimeError, OSError, ValueError) as err:
        raise DataError(f"{_where(path, node)} ({what}): cannot read its layout ({err}).") from err


def read_array(node: h5py.Dataset, path: Path, what: str) -> np.ndarray:
    """Read a numeric dataset as float64, after checking its declared size."""
    check_declared_size(node, path, what)
    return np.asarray(_read(node, path, what), dtype=np.float64)


def read_strings(h5: h5py.File, node: h5py.Dataset, path: Path, what: str) -> list[str]:
    """Read a list of strings: bytes, str, MATLAB char arrays or MATLAB cellstr references."""
    check_declared_size(node, path, what)
    raw = _read(node, path, what)
    if node.dtype.kind == "O" and h5py.check_dtype(ref=node.dtype) is not None:
        return [_referenced_chars(h5, ref, path, what) for ref in np.asarray(raw).ravel()]
    if node.dtype.kind in "ui":  # a MATLAB char matrix: one string per row
        return [matlab_chars(row, path, node) for row in np.atleast_2d(raw)]
    if node.dtype.kind in "fb":
        raise DataError(
            f"{_where(path, node)} ({what}) holds numbers ({node.dtype}) where BData has "
            "strings; the file is not a valid BData file."
        )
    return [_to_text(item, path, node) for item in np.atleast_1d(raw).ravel()]


def _read(node: h5py.Dataset, path: Path, what: str) -> Any:
    try:
        return node[()]
    except (OSError, RuntimeError, ValueError, TypeError) as err:
        # The Fletcher-32 filter (on the files this project writes) fails as "filter ...".
        if node.fletcher32 and "filter" in str(err).lower():
            raise DataError(
                f"{_where(path, node)} ({what}) fails its checksum: the file was damaged after it "
                "was written (disk or copy error); write or download it again."
            ) from err
        raise DataError(
            f"{_where(path, node)} ({what}) cannot be read ({err}); the file is damaged "
            "(download it again)."
        ) from err


def _referenced_chars(h5: h5py.File, ref: Any, path: Path, what: str) -> str:
    """Follow one MATLAB cellstr reference to its character codes."""
    try:
        target = h5[ref]
    except (ValueError, KeyError, RuntimeError, OSError, TypeError) as err:
        raise DataError(
            f"{path}: a reference in {what} points nowhere ({err}); the file is damaged."
        ) from err
    target = require_dataset(target, path, f"a string of {what}", (0, 1, 2))
    check_declared_size(target, path, f"a string of {what}")
    return matlab_chars(_read(target, path, what), path, target)


def matlab_chars(codes: Any, path: Path, node: Any) -> str:
    """Decode MATLAB character codes (zeros are padding); codes must be Unicode code points."""
    flat = np.asarray(codes).ravel()
    if flat.dtype.kind not in "uib":
        raise DataError(f"{_where(path, node)}: character codes of type {flat.dtype}.")
    values = [int(c) for c in flat if int(c) != 0]
    bad = [
        c for c in values if not 0 < c <= _MAX_CODE_POINT or _SURROGATES[0] <= c <= _SURROGATES[1]
    ]
    if bad:
        raise DataError(
            f"{_where(path, node)}: character code {bad[0]} is not a Unicode character; "
            "the file is damaged or not a BData file."
        )
    return "".join(chr(c) for c in values).strip()


def _to_text(item: Any, path: Path, node: Any) -> str:
    if isinstance(item, bytes):
        try:
            return item.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(
                f"{_where(path, node)}: a string is not UTF-8 text ({err}); the file is damaged."
            ) from err
    return str(item)


# --------------------------------------------------------------------------------------------
# The whole file
# --------------------------------------------------------------------------------------------


@dataclass
class BDataContent:
    """What a BData file holds, oriented as this project uses it.

    Attributes
    ----------
    dataset : ndarray, shape (n_samples, n_cols), float64
    keys, descriptions : list of str, one per metadata key
    values : ndarray, shape (n_keys, n_cols), float64
    header : dict
    vmap : dict, ``{key: {value: name}}``
    """

    dataset: np.ndarray
    keys: list[str]
    descriptions: list[str]
    values: np.ndarray
    header: dict[str, Any] = field(default_factory=dict)
    vmap: dict[str, dict[float, str]] = field(default_factory=dict)


def read_bdata(h5: h5py.File, path: Path, read_data: bool = True) -> BDataContent:
    """Read an open BData file, checking each node before it is read.

    Parameters
    ----------
    h5 : h5py.File
    path : Path
        The file, for messages.
    read_data : bool
        False: check everything but read the data array only as far as its layout
        (the returned ``dataset`` is then empty, shape (0, n_cols)); a quick check
        of structure and metadata.

    Raises
    ------
    DataError
        Naming the file, the node and the problem, for any malformed file.
    """
    check_local_storage(h5, path)
    meta = require_group(
        _pick(h5, ("metadata", "metaData"), path, "metadata group"), path, "metadata"
    )
    key_node = require_dataset(
        _pick(meta, ("key",), path, "metadata keys"), path, "metadata keys", (0, 1, 2), True
    )
    value_node = require_dataset(
        _pick(meta, ("value",), path, "metadata values"), path, "metadata values", (1, 2)
    )
    data_node = require_dataset(
        _pick(h5, ("dataset", "dataSet"), path, "dataset"), path, "the data array", (2,)
    )
    # Declared sizes first (cheap, nothing allocated), then the arrays.
    for node, what in ((value_node, "metadata values"), (data_node, "the data array")):
        check_declared_size(node, path, what)
    keys = read_strings(h5, key_node, path, "metadata keys")
    refuse_duplicate_keys(keys, path)
    values = read_array(value_node, path, "metadata values")
    descriptions = _read_descriptions(h5, meta, path, len(keys))
    # Without reading: a zero-byte view of the declared shape, to check it all the same.
    data = (
        read_array(data_node, path, "the data array")
        if read_data
        else np.broadcast_to(np.float64(0), data_node.shape)
    )
    dataset, values = _orient(data, values, len(keys), path)
    dataset = np.ascontiguousarray(dataset) if read_data else np.zeros((0, values.shape[1]))
    content = BDataContent(dataset, keys, descriptions, values)
    header = child(h5, "header", path)
    if header is not None:
        content.header = _read_header(require_group(header, path, "header"), path)
    vmap = child(h5, "vmap", path)
    if vmap is not None:
        content.vmap = _read_vmap(require_group(vmap, path, "value maps"), path)
    return content


def _pick(group: h5py.Group, names: Sequence[str], path: Path, what: str) -> Any:
    for name in names:
        node = child(group, name, path)
        if node is not None:
            return node
    raise DataError(
        f"{path}: no {what} ({' or '.join(names)}) in the file; it holds {sorted(group.keys())}. "
        "Is this a BData file?"
    )


def _orient(dataset: np.ndarray, values: np.ndarray, n_keys: int, path: Path) -> tuple:
    """Undo MATLAB's transposition: values must be (n_keys, n_cols), dataset (n, n_cols)."""
    values = np.atleast_2d(values)
    if values.shape[0] != n_keys and values.shape[1] == n_keys:
        values = values.T
    if values.shape[0] != n_keys:
        raise DataError(
            f"{path}: metadata/value has shape {values.shape} but there are {n_keys} keys; "
            "the file is not a valid BData file."
        )
    n_cols = values.shape[1]
    if dataset.shape[1] != n_cols and dataset.shape[0] == n_cols:
        dataset = dataset.T
    if dataset.shape[1] != n_cols:
        raise DataError(
            f"{path}: dataset has shape {dataset.shape} but metadata describes {n_cols} "
            "columns; the file is not a valid BData file."
        )
    return dataset, np.ascontiguousarray(values)


def _read_descriptions(h5: h5py.File, meta: h5py.Group, path: Path, n_keys: int) -> list[str]:
    node = child(meta, "description", path)
    if node is None:
        return [""] * n_keys
    what = "metadata descriptions"
    descriptions = read_strings(h5, require_dataset(node, path, what, (0, 1, 2), True), path, what)
    if len(descriptions) != n_keys:
        raise DataError(
            f"{path}: {len(descriptions)} metadata descriptions for {n_keys} keys; "
            "the file is not a valid BData file."
        )
    return descriptions


def _read_small(group: h5py.Group, name: str, path: Path, what: str, ndims: tuple) -> Any:
    """Read one small entry (header, value name) of any string or numeric type."""
    node = require_dataset(child(group, name, path), path, what, ndims, strings=True)
    check_declared_size(node, path, what)
    return _read(node, path, what)


def _read_header(group: h5py.Group, path: Path) -> dict[str, Any]:
    """Provenance entries of ``/header``: one dataset per entry."""
    return {
        name: _header_value(_read_small(group, name, path, "a header entry", (0, 1, 2)))
        for name in group
    }


def _read_vmap(group: h5py.Group, path: Path) -> dict[str, dict[float, str]]:
    """Value maps of ``/vmap``: a group per key, a text dataset per value."""
    vmap: dict[str, dict[float, str]] = {}
    for key in group:
        entries = require_group(child(group, key, path), path, "a value map")
        mapping = {}
        for value in entries:
            try:
                number = float(value)
            except ValueError:
                raise DataError(
                    f"{path}: /vmap/{key} has an entry {value!r}, which is not a number; "
                    "the file is not a valid BData file."
                ) from None
            mapping[number] = _to_str(_read_small(entries, value, path, "a value name", (0, 1)))
        vmap[key] = mapping
    return vmap


def _to_str(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return "".join(_to_str(v) for v in value.ravel())
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _header_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_to_str(v) for v in value.ravel()]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value.item() if isinstance(value, np.generic) else value
