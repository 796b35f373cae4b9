"""Stimulus ids (float64) to ImageNet-style file names and back, as the lab does.

A stimulus id is a float whose integer part is the WordNet synset number and
whose 6-digit fraction is the image number: ``1518878.005958`` is the image
``n01518878_5958`` (file ``n01518878_5958.JPEG``). The conversion goes through
``'%f'`` formatting exactly like the lab's code, so ids must stay float64: in
float32 ``1518878.005958`` becomes ``1518878.0`` and names collide.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from e2e_recon.errors import DataError

if TYPE_CHECKING:
    from e2e_recon.data.bdata import BData

#: File extensions accepted for stimulus images (lower case).
IMAGE_SUFFIXES = frozenset(
    {".jpeg", ".jpg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
)

__all__ = ["id_to_name", "name_to_id"]

_NAME_RE = re.compile(r"n(\d{1,8})_(\d{1,6})")


def id_to_name(stim_id: Any) -> str:
    """Convert a stimulus id to its image name.

    Parameters
    ----------
    stim_id : float
        For example ``1518878.005958``. Must be a Python float or float64.

    Returns
    -------
    str
        For example ``"n01518878_5958"`` (no extension).

    Raises
    ------
    DataError
        If the id is float32 (its fraction is already lost), negative, or not finite.
    """
    if isinstance(stim_id, (np.floating, np.ndarray)) and np.asarray(stim_id).dtype != np.float64:
        raise DataError(
            f"Stimulus id {stim_id!r} has dtype {np.asarray(stim_id).dtype}; ids must stay "
            "float64 (float32 drops the image number: 1518878.005958 -> 1518878.0)."
        )
    value = float(stim_id)
    if not np.isfinite(value) or value < 0:
        raise DataError(
            f"Stimulus id {stim_id!r} is not a valid id (expected e.g. 1518878.005958)."
        )
    # The lab's formula: 'n%08d_%d' % (int(('%f' % x).split('.')[0]), int(('%f' % x).split('.')[1]))
    synset, image = ("%f" % value).split(".")  # noqa: UP031  (the exact '%f' rounding matters)
    return "n%08d_%d" % (int(synset), int(image))  # noqa: UP031


def name_to_id(name: str) -> float:
    """Convert an image name (or file name) to its stimulus id.

    Parameters
    ----------
    name : str
        ``"n01518878_5958"``, optionally with a folder and extension
        (``"images/n01518878_5958.JPEG"``).

    Returns
    -------
    float
        For example ``1518878.005958`` (float64).

    Raises
    ------
    DataError
        If the name does not follow the ``n<synset>_<number>`` pattern or the image
        number has more than 6 digits (it would not fit the id's fraction).
    """
    stem = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    stem = stem.split(".", 1)[0] if "." in stem else stem
    match = _NAME_RE.fullmatch(stem)
    if match is None:
        raise DataError(
            f"Image name {name!r} does not look like 'n01518878_5958' (n + 8-digit synset, "
            "underscore, image number of at most 6 digits); cannot turn it into a stimulus id."
        )
    return float(f"{int(match.group(1))}.{int(match.group(2)):06d}")


def stimulus_ids_of(bdata: BData) -> np.ndarray:
    """Per-sample stimulus ids of a BData file, shape (n_samples,), float64.

    From the ``stimulus_id`` key when the file has one, else from ``Label`` (its
    second column when it has several, as the reference code reads it).
    """
    if "stimulus_id" in bdata.metadata_keys:
        ids = bdata.get("stimulus_id")
    elif "Label" in bdata.metadata_keys:
        ids = bdata.select("Label")
    else:
        raise DataError(
            f"{bdata.path}: no 'stimulus_id' or 'Label' key; cannot tell which image each "
            f"sample shows. Keys in the file: {', '.join(bdata.metadata_keys[:30])}."
        )
    return np.ascontiguousarray(ids[:, 1] if ids.shape[1] > 1 else ids[:, 0], dtype=np.float64)
