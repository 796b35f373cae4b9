"""BData HDF5 files (the Kamitani lab's data format), read and written with h5py.

A BData file holds one 2-D float64 array ``dataset`` (samples x columns) and
per-column metadata: a list of keys, one row of values per key (NaN where a key
does not apply) and a description per key. Voxel columns, label columns, run and
session columns all live side by side; keys such as ``VoxelData`` or ``ROI_VC``
mark which columns are which.

``BData.select`` picks columns with the lab's selection grammar (``ROI_V1 | ROI_V2``,
``ROI_V*``, ``VoxelData - ROI_VC``); the grammar lives in :mod:`e2e_recon.data.selection`.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from e2e_recon.data.h5probe import probe_file, read_bdata_file
from e2e_recon.data.selection import parse_selection, select_columns
from e2e_recon.errors import DataError
from e2e_recon.fileio import atomic_path

__all__ = ["BData", "parse_selection"]


class BData:
    """A BData dataset: a float64 array with per-column metadata.

    Parameters
    ----------
    path : str or Path, optional
        A BData HDF5 file (``.h5``, or a MATLAB v7.3 ``.mat``) to read. Without
        it the object starts empty.

    Attributes
    ----------
    dataset : ndarray, shape (n_samples, n_cols), float64
    header : dict
        Provenance entries from ``/header`` (free-form).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.dataset: np.ndarray = np.zeros((0, 0), dtype=np.float64)
        self._keys: list[str] = []
        self._descriptions: list[str] = []
        self._values: np.ndarray = np.zeros((0, 0), dtype=np.float64)
        self._vmap: dict[str, dict[float, str]] = {}
        self.header: dict[str, Any] = {}
        self.path: Path | None = None
        if path is not None:
            self._load(Path(path))

    # -- metadata ------------------------------------------------------------------------

    @property
    def metadata_keys(self) -> list[str]:
        """All metadata keys, in file order."""
        return list(self._keys)

    @property
    def n_cols(self) -> int:
        """Number of columns described by the metadata."""
        return int(self._values.shape[1]) if self._keys else int(self.dataset.shape[1])

    def metadata(self, key: str) -> np.ndarray:
        """Return the metadata values of ``key``, shape (n_cols,), float64 (NaN = not set)."""
        return self._values[self._key_index(key)].copy()

    def metadata_description(self, key: str) -> str:
        """Return the description of ``key``."""
        return self._descriptions[self._key_index(key)]

    def _key_index(self, key: str) -> int:
        try:
            return self._keys.index(key)
        except ValueError:
            raise DataError(self._missing_key_message(key)) from None

    def _missing_key_message(self, key: str) -> str:
        where = f" in {self.path}" if self.path else ""
        rois = [k for k in self._keys if k.startswith("ROI_")]
        others = [k for k in self._keys if not k.startswith("ROI_")]
        return (
            f"Metadata key {key!r} not found{where}. ROIs in this file: "
            f"{', '.join(rois) or '(none)'}. Other keys: {', '.join(others[:30]) or '(none)'}"
            f"{' ...' if len(others) > 30 else ''}."
        )

    # -- selection -----------------------------------------------------------------------

    def select_index(self, expr: str, allow_empty: bool = False) -> np.ndarray:
        """Return the boolean column mask of a selection expression.

        Parameters
        ----------
        expr : str
            Selection expression, for example ``"ROI_VC = 1"``.
        allow_empty : bool
            If False (default), an expression selecting no column raises DataError.

        Returns
        -------
        ndarray, shape (n_cols,), bool
        """
        mask = select_columns(expr, self._keys, self._values, self._missing_key_message)
        if not allow_empty and not mask.any():
            where = f" of {self.path}" if self.path else ""
            raise DataError(
                f"Selection {expr!r} selects no column{where}."
                " Note: 'KEY = N' matches columns where KEY is 1 (N = 1) or not 1 (N = 0) only."
            )
        return mask

    def select(self, expr: str, return_index: bool = False) -> Any:
        """Select columns of the dataset with a selection expression.

        Parameters
        ----------
        expr : str
            Selection expression (grammar in :mod:`e2e_recon.data.selection`).
        return_index : bool
            Also return the boolean column mask, as bdpy does.

        Returns
        -------
        ndarray, shape (n_samples, n_selected), float64
            (and the mask, shape (n_cols,), if ``return_index``)

        Raises
        ------
        DataError
            For a missing key (the message lists the ROIs that exist), a malformed
            expression, or an empty selection.
        """
        mask = self.select_index(expr)
        data = self.dataset[:, mask]
        return (data, mask) if return_index else data

    def get(self, key: str) -> np.ndarray:
        """Columns where ``key`` is 1 (bdpy's ``get``; same as ``select(key)``)."""
        return self.select(f'"{key}" = 1')

    # -- modification --------------------------------------------------------------------

    def add(self, values: np.ndarray, key: str) -> None:
        """Append columns to the dataset, marked by metadata ``key`` = 1 on the new columns.

        Parameters
        ----------
        values : ndarray, shape (n_samples,) or (n_samples, k)
        key : str
            If ``key`` already exists, its values on the new columns become 1 and
            its old values are kept (as in bdpy).
        """
        x = np.asarray(values, dtype=np.float64)
        x = x[:, None] if x.ndim == 1 else x
        if x.ndim != 2:
            raise DataError(f"BData.add({key!r}): values must be 1-D or 2-D, got {x.shape}.")
        n_old = self.n_cols
        if self.dataset.size and x.shape[0] != self.dataset.shape[0]:
            raise DataError(
                f"BData.add({key!r}): {x.shape[0]} rows, but the dataset has "
                f"{self.dataset.shape[0]} samples."
            )
        self.dataset = x.copy() if not self.dataset.size else np.hstack([self.dataset, x])
        self._values = np.hstack(
            [
                self._values.reshape(len(self._keys), n_old),
                np.full((len(self._keys), x.shape[1]), np.nan),
            ]
        )
        row = np.concatenate([np.full(n_old, np.nan), np.ones(x.shape[1])])
        if key in self._keys:
            row[:n_old] = self._values[self._keys.index(key), :n_old]
        self._set_row(key, row, f"1 = {key}")

    def add_metadata(
        self, key: str, value: Any, description: str = "", where: str | None = None
    ) -> None:
        """Add (or replace) a metadata row.

        Parameters
        ----------
        key : str
        value : array_like, shape (n_cols,), or (number of columns where ``where`` is 1,)
        description : str
        where : str, optional
            A key; ``value`` is then written to the columns where that key is 1 and
            NaN elsewhere.
        """
        value = np.asarray(value, dtype=np.float64).ravel()
        if where is not None:
            mask = self.metadata(where) == 1
            if value.size not in (1, int(mask.sum())):
                raise DataError(
                    f"add_metadata({key!r}, where={where!r}): {value.size} values for "
                    f"{int(mask.sum())} columns."
                )
            row = np.full(self.n_cols, np.nan)
            row[mask] = value
        else:
            if value.size != self.n_cols:
                raise DataError(
                    f"add_metadata({key!r}): {value.size} values but the dataset has "
                    f"{self.n_cols} columns."
                )
            row = value
        self._set_row(key, row, description)

    def _set_row(self, key: str, row: np.ndarray, description: str) -> None:
        if key in self._keys:
            i = self._keys.index(key)
            self._values[i] = row
            self._descriptions[i] = description
        else:
            self._keys.append(key)
            self._descriptions.append(description)
            self._values = np.vstack([self._values.reshape(len(self._keys) - 1, row.size), row])

    # -- value maps ----------------------------------------------------------------------

    @property
    def vmap(self) -> dict[str, dict[float, str]]:
        """Value-to-name maps, ``{key: {value: name}}`` (a copy; assign to replace)."""
        return {k: dict(v) for k, v in self._vmap.items()}

    @vmap.setter
    def vmap(self, maps: dict[str, dict[float, str]]) -> None:
        self._vmap = {}
        for key, mapping in maps.items():
            self.add_vmap(key, mapping)

    def add_vmap(self, key: str, mapping: dict[float, str]) -> None:
        """Attach a value-to-name map to metadata ``key`` (the key must exist)."""
        self._key_index(key)
        merged = dict(self._vmap.get(key, {}))
        for value, name in mapping.items():
            if isinstance(value, str):
                raise DataError(f"vmap for {key!r}: values must be numbers, got {value!r}.")
            old = merged.get(float(value))
            if old is not None and old != name:
                raise DataError(f"vmap for {key!r}: {value} is {old!r}, cannot become {name!r}.")
            merged[float(value)] = str(name)
        self._vmap[key] = merged

    def get_labels(self, key: str) -> list[str]:
        """Names of the values in the ``key`` column (single column), via the vmap."""
        if key not in self._vmap:
            raise DataError(f"No vmap for {key!r}; keys with a vmap: {sorted(self._vmap)}.")
        column = self.get(key)[:, 0]
        return ["n/a" if np.isnan(v) else self._vmap[key][float(v)] for v in column]

    # -- file I/O ------------------------------------------------------------------------

    def _load(self, path: Path) -> None:
        if not path.is_file():
            raise DataError(f"BData file not found: {path}.")
        self.path = path
        probe_file(path)  # in a child process first: a hang or crash there is one line here
        content = read_bdata_file(path)
        self.dataset, self._values = content.dataset, content.values
        self._keys, self._descriptions = content.keys, content.descriptions
        self.header, self._vmap = content.header, content.vmap

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the data to a BData HDF5 file, atomically (temporary name, then rename).

        The file is readable by bdpy (``bdpy.BData(path)``). Its data array and
        metadata values carry HDF5's Fletcher-32 checksum, verified on every read.
        """
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
            self._write_h5(h5)

    def _write_h5(self, h5: h5py.File) -> None:
        vlen = h5py.special_dtype(vlen=bytes)
        # Fletcher-32 checksums (per chunk) on the numeric arrays: bytes damaged later
        # fail the read instead of reading as other voxel values.
        h5.create_dataset(
            "dataset", data=self.dataset.astype(np.float64, copy=False), fletcher32=True
        )
        meta = h5.create_group("metadata")
        meta.create_dataset("key", data=[k.encode() for k in self._keys], dtype=vlen)
        meta.create_dataset(
            "description", data=[d.encode() for d in self._descriptions], dtype=vlen
        )
        meta.create_dataset(
            "value", data=self._values.reshape(len(self._keys), self.n_cols), fletcher32=True
        )
        header = dict(self.header)
        now = datetime.datetime.now()
        header.update(ctime=now.strftime("%Y-%m-%d %H:%M:%S"), ctime_epoch=now.timestamp())
        header["creator"] = "e2e-recon"
        group = h5.create_group("header")
        for key, value in header.items():
            if isinstance(value, (list, tuple)):
                group.create_dataset(key, data=[str(v).encode() for v in value], dtype=vlen)
            elif isinstance(value, str):
                group.create_dataset(key, data=value.encode())
            else:
                group.create_dataset(key, data=value)
        vgroup = h5.create_group("vmap")
        for key, mapping in self._vmap.items():
            g = vgroup.create_group(key)
            for value, name in mapping.items():
                g.create_dataset(str(float(value)), data=name.encode())
