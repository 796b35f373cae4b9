"""Read (and, for tests, write) ``.caffemodel`` files without Caffe or protobuf.

A ``.caffemodel`` is one binary protobuf ``NetParameter`` message. Only the
fields that carry weights are decoded; everything else is skipped by length:

- ``NetParameter``: ``layer`` (100, current format) or ``layers`` (2, "V1").
- ``LayerParameter``: ``name`` (1), ``type`` (2, string), ``blobs`` (7).
- ``V1LayerParameter``: ``name`` (4), ``type`` (5, enum), ``blobs`` (6).
- ``BlobProto``: ``shape`` (7, ``BlobShape.dim`` = 1, int64), legacy
  ``num/channels/height/width`` (1-4), ``data`` (5, float32),
  ``double_data`` (8, float64); repeated numbers packed or not.

The file is memory-mapped, and each blob's bytes are copied exactly once, into
its own NumPy array. Every length read from the file is checked against the
bytes that are really there before anything is allocated, so a corrupted file
raises :class:`~e2e_recon.errors.ModelFormatError` instead of exhausting memory.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from e2e_recon.errors import ModelFormatError

# Wire types of the protobuf encoding.
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5

#: V1 layer type enum values (``V1LayerParameter.LayerType``) -> current type names.
V1_LAYER_TYPES: dict[int, str] = {
    3: "Concat",
    4: "Convolution",
    5: "Data",
    6: "Dropout",
    8: "Flatten",
    14: "InnerProduct",
    15: "LRN",
    17: "Pooling",
    18: "ReLU",
    19: "Sigmoid",
    20: "Softmax",
    21: "SoftmaxWithLoss",
    22: "Split",
    23: "TanH",
    39: "Deconvolution",
}


@dataclass
class CaffeLayer:
    """One layer of a ``.caffemodel``: its name, type and parameter blobs.

    Attributes
    ----------
    name : str
    type : str
        Current Caffe type name ("Convolution"); V1 enum values are translated.
    blobs : list of ndarray
        float32 arrays in Caffe's layout (weights first, then bias).
    """

    name: str
    type: str = ""
    blobs: list[np.ndarray] = field(default_factory=list)


class _Buffer:
    """Bounds-checked protobuf decoding over a read-only byte buffer."""

    def __init__(self, data: memoryview, source: str) -> None:
        self.data = data
        self.source = source
        self.layer = ""  # the layer being decoded, for error messages

    def fail(self, what: str, offset: int) -> ModelFormatError:
        where = f" in layer '{self.layer}'" if self.layer else ""
        return ModelFormatError(
            f"{self.source}: not a valid .caffemodel ({what} at byte {offset}{where}). "
            "The file may be truncated or corrupted, or not a Caffe model at all: "
            "download it again or check the path."
        )

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        result, shift = 0, 0
        data = self.data
        while True:
            if pos >= end or shift > 63:
                raise self.fail("unterminated number", pos)
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result, pos
            shift += 7

    def fields(self, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
        """Yield ``(field_number, wire_type, value_or_start, stop)`` for one message.

        For varints the third item is the value; for the other wire types it is
        the start offset of the payload and ``stop`` its end.
        """
        pos = start
        while pos < end:
            key, pos = self.varint(pos, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise self.fail("field number 0", pos)
            if wire == _VARINT:
                value, pos = self.varint(pos, end)
                yield number, wire, value, pos
                continue
            if wire == _LENGTH:
                length, pos = self.varint(pos, end)
                stop = pos + length
            elif wire == _FIXED32:
                stop = pos + 4
            elif wire == _FIXED64:
                stop = pos + 8
            else:
                raise self.fail(f"unsupported wire type {wire}", pos)
            if stop > end:
                raise self.fail("a field runs past the end of its message", pos)
            yield number, wire, pos, stop
            pos = stop

    def text(self, start: int, stop: int) -> str:
        return bytes(self.data[start:stop]).decode("utf-8", errors="replace")


def _numbers(buf: _Buffer, chunks: list[tuple[int, int, int]], dtype: str) -> np.ndarray:
    """Concatenate packed chunks and unpacked single values of one repeated field."""
    itemsize = np.dtype(dtype).itemsize
    parts = []
    for wire, start, stop in chunks:
        if wire == _LENGTH and (stop - start) % itemsize:
            raise buf.fail(f"packed {dtype} data of {stop - start} bytes", start)
        # Copy once out of the (memory-mapped) file into an array we own.
        parts.append(np.frombuffer(buf.data[start:stop], dtype=dtype).astype(np.float32))
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _blob_shape(buf: _Buffer, start: int, stop: int) -> list[int]:
    dims: list[int] = []
    for number, wire, value, end in buf.fields(start, stop):
        if number != 1:
            continue
        if wire == _VARINT:
            dims.append(value)
        elif wire == _LENGTH:
            pos = value
            while pos < end:
                dim, pos = buf.varint(pos, end)
                dims.append(dim)
        else:
            raise buf.fail("shape dimension with a wrong wire type", value)
    return [d - (1 << 64) if d >= 1 << 63 else d for d in dims]  # int64 two's complement


def _parse_blob(buf: _Buffer, start: int, stop: int, index: int) -> np.ndarray:
    shape: list[int] | None = None
    legacy: dict[int, int] = {}
    chunks: dict[str, list[tuple[int, int, int]]] = {"<f4": [], "<f8": []}
    for number, wire, value, end in buf.fields(start, stop):
        if number == 7 and wire == _LENGTH:
            shape = _blob_shape(buf, value, end)
        elif number in (1, 2, 3, 4) and wire == _VARINT:
            legacy[number] = value if value < 1 << 63 else value - (1 << 64)
        elif number == 5 and wire in (_LENGTH, _FIXED32):
            chunks["<f4"].append((wire, value, end))
        elif number == 8 and wire in (_LENGTH, _FIXED64):
            chunks["<f8"].append((wire, value, end))
    if shape is None:
        # Legacy 4-D blob; Caffe reads absent dims as 0.
        shape = [legacy.get(i, 0) for i in (1, 2, 3, 4)] if legacy else []
    data = _numbers(buf, chunks["<f4"], "<f4") if chunks["<f4"] else None
    if chunks["<f8"]:
        double = _numbers(buf, chunks["<f8"], "<f8")
        data = double if data is None or data.size == 0 else data
    if data is None:
        data = np.zeros(0, dtype=np.float32)
    if any(d < 0 for d in shape) or int(np.prod(shape, dtype=object)) != data.size:
        raise ModelFormatError(
            f"{buf.source}: layer '{buf.layer}' blob {index} declares shape {tuple(shape)} "
            f"but holds {data.size} values. The file is corrupted: download it again."
        )
    return data.reshape(shape)


def _parse_layer(buf: _Buffer, start: int, stop: int, v1: bool) -> CaffeLayer:
    name_field, type_field, blobs_field = (4, 5, 6) if v1 else (1, 2, 7)
    layer = CaffeLayer(name="")
    blob_spans = []
    for number, wire, value, end in buf.fields(start, stop):
        if number == name_field and wire == _LENGTH:
            layer.name = buf.text(value, end)
            buf.layer = layer.name
        elif number == type_field and wire == _LENGTH and not v1:
            layer.type = buf.text(value, end)
        elif number == type_field and wire == _VARINT and v1:
            layer.type = V1_LAYER_TYPES.get(value, f"V1:{value}")
        elif number == blobs_field and wire == _LENGTH:
            blob_spans.append((value, end))
    buf.layer = layer.name
    layer.blobs = [_parse_blob(buf, a, b, i) for i, (a, b) in enumerate(blob_spans)]
    buf.layer = ""
    return layer


def parse_caffemodel(data: bytes | memoryview, source: str = "<bytes>") -> list[CaffeLayer]:
    """Decode the layers of a ``NetParameter`` held in memory.

    Parameters
    ----------
    data : bytes or memoryview
        The whole file.
    source : str
        Name used in error messages.

    Returns
    -------
    list of CaffeLayer, in file order (layers without a name are kept too).

    Raises
    ------
    ModelFormatError
        If the bytes are not a well-formed Caffe ``NetParameter`` with layers.
    """
    buf = _Buffer(memoryview(data).cast("B"), source)
    layers: list[CaffeLayer] = []
    try:
        for number, wire, value, end in buf.fields(0, len(buf.data)):
            if number in (2, 100) and wire == _LENGTH:
                layers.append(_parse_layer(buf, value, end, v1=number == 2))
    finally:
        buf.data.release()  # lets a memory-mapped file close even after an error
    if not layers:
        raise ModelFormatError(
            f"{source}: no layers found; this is not a Caffe .caffemodel "
            "(expected a binary NetParameter with 'layer' or 'layers' entries)."
        )
    return layers


def read_caffemodel(path: str | os.PathLike[str]) -> list[CaffeLayer]:
    """Read every layer of a ``.caffemodel`` file (memory-mapped, copied once).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    list of CaffeLayer, in file order.

    Raises
    ------
    ModelFormatError
        If the file is missing, empty, truncated or not a Caffe model.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                raise ModelFormatError(f"{path}: the file is empty, not a .caffemodel.")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    return parse_caffemodel(view, source=str(path))
                finally:
                    view.release()
    except OSError as err:
        raise ModelFormatError(f"{path}: cannot read the .caffemodel ({err}).") from err


def read_caffemodel_blobs(path: str | os.PathLike[str]) -> dict[str, list[np.ndarray]]:
    """Parameter blobs of a ``.caffemodel`` by layer name (layers with blobs only).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    dict mapping layer name -> list of float32 arrays (weights, bias).
    """
    return {layer.name: layer.blobs for layer in read_caffemodel(path) if layer.blobs}


# --------------------------------------------------------------------------- writer
# Used by the tests and benchmarks to build files of any size and format variant.


def _key(number: int, wire: int) -> bytes:
    return _varint_bytes(number << 3 | wire)


def _varint_bytes(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _length_field(number: int, payload: bytes) -> bytes:
    return _key(number, _LENGTH) + _varint_bytes(len(payload)) + payload


def _blob_chunks(
    array: np.ndarray, legacy_dims: bool, double: bool, packed: bool
) -> list[bytes | memoryview]:
    """Encoded ``BlobProto`` as a list of byte chunks (large data is not concatenated)."""
    array = np.asarray(array)
    if legacy_dims:
        dims = [1] * (4 - array.ndim) + list(array.shape)
        shape = b"".join(_key(n, _VARINT) + _varint_bytes(d) for n, d in enumerate(dims, start=1))
    else:
        packed_dims = b"".join(_varint_bytes(d) for d in array.shape)
        shape = _length_field(7, _length_field(1, packed_dims))
    number, wire, dtype = (8, _FIXED64, "<f8") if double else (5, _FIXED32, "<f4")
    values = np.ascontiguousarray(array, dtype=dtype).reshape(-1)
    if packed:
        head = _key(number, _LENGTH) + _varint_bytes(values.nbytes)
        return [shape, head, memoryview(values.data).cast("B")]
    key = _key(number, wire)
    fmt = "<d" if double else "<f"
    return [shape, b"".join(key + struct.pack(fmt, v) for v in values.tolist())]


def _layer_chunks(
    name: str, type_name: str, blobs: Sequence[np.ndarray], v1: bool, **blob_options: bool
) -> list[bytes | memoryview]:
    """Encoded ``LayerParameter`` (or V1) field of ``NetParameter``, as byte chunks."""
    v1_codes = {text: code for code, text in V1_LAYER_TYPES.items()}
    chunks: list[bytes | memoryview] = [_length_field(4 if v1 else 1, name.encode())]
    if v1 and type_name in v1_codes:
        chunks.append(_key(5, _VARINT) + _varint_bytes(v1_codes[type_name]))
    elif type_name and not v1:
        chunks.append(_length_field(2, type_name.encode()))
    for blob in blobs:
        body = _blob_chunks(blob, **blob_options)
        size = sum(len(c) for c in body)
        chunks += [_key(6 if v1 else 7, _LENGTH) + _varint_bytes(size), *body]
    size = sum(len(c) for c in chunks)
    return [_key(2 if v1 else 100, _LENGTH) + _varint_bytes(size), *chunks]


def write_caffemodel(
    path: str | os.PathLike[str],
    layers: Mapping[str, Sequence[np.ndarray]],
    *,
    types: Mapping[str, str] | None = None,
    v1: bool = False,
    legacy_dims: bool = False,
    double: bool = False,
    packed: bool = True,
) -> Path:
    """Write a minimal ``.caffemodel`` (for tests and benchmarks only).

    Parameters
    ----------
    path : path-like
    layers : mapping layer name -> blobs (arrays in Caffe layout), in file order.
    types : mapping layer name -> Caffe type name, optional.
    v1 : write the old ``layers`` (V1) format instead of ``layer``.
    legacy_dims : write num/channels/height/width instead of ``shape``.
    double : write ``double_data`` instead of float ``data``.
    packed : write repeated numbers packed (as Caffe does) or one by one.

    Returns
    -------
    Path of the written file (written to a temporary name, then renamed).
    """
    path = Path(path)
    options = {"legacy_dims": legacy_dims, "double": double, "packed": packed}
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as out:
        for name, blobs in layers.items():
            type_name = (types or {}).get(name, "")
            out.writelines(_layer_chunks(name, type_name, blobs, v1, **options))
    os.replace(tmp, path)
    return path
