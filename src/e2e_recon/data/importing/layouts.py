"""Which array is what: the layouts of published fMRI datasets, detected.

Small reconstruction datasets come as ``.mat``/``.npz``/HDF5 files in a handful of
layouts. This module finds the voxels, images, labels and runs of each set (training,
test) in a dict of named arrays, and records which array became what, so that the
import can say so and print the command that makes the same choice with explicit keys.

Layouts recognised (names compared without regard to case):

- pooled arrays with a split array: ``voxels`` + ``labels`` (+ ``split``), as before;
- separate training and test arrays with a common stem: ``fmriTrn``/``fmriTest``,
  ``voxels_train``/``voxels_test``, ``X_train``/``X_test``, ``train_voxels``/``test_voxels``,
  and groups ``train/...``/``test/...`` of HDF5 and MATLAB v7.3 files.

An explicit key is one array name (pooled) or ``TRAIN,TEST`` (separate sets).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from e2e_recon.errors import DataError

__all__ = ["Layout", "SetArrays", "detect_layout", "flat_to_images", "parse_images_shape"]

# Names (lower case) that say what an array is; shape decides first, names break ties.
VOXEL_NAMES = ("voxels", "voxel", "x", "fmri", "brain", "data", "bold", "betas", "beta", "resp")
IMAGE_NAMES = ("images", "image", "stimuli", "stim", "stimulus", "imgs", "img", "y", "pixels")
LABEL_NAMES = ("labels", "label", "y", "stimulus", "stim", "stimulus_id", "ids", "class", "target")
RUN_NAMES = ("runs", "run")

# Suffixes and prefixes that mark a training array and its test partner, longest first.
_TRAIN_SUFFIXES = ("_training", "_train", "_trn", "training", "train", "trn")
_TEST_SUFFIXES = ("_test", "_tst", "test", "tst")
_TRAIN_PREFIXES = ("training/", "train/", "training_", "train_", "trn_")
_TEST_PREFIXES = ("test/", "test_", "tst_")


@dataclass
class SetArrays:
    """The arrays of one set (training or test), samples along axis 0."""

    voxels: np.ndarray
    labels: np.ndarray | None = None
    images: np.ndarray | None = None  # this set's own images (separate layouts)
    runs: np.ndarray | None = None


@dataclass
class Layout:
    """Arrays by set, plus what was chosen and from which array names.

    ``keys`` holds the explicit option values that reproduce the choice
    (``{"voxels": "fmriTrn,fmriTest", ...}``); ``images`` is an images array shared by
    every set (pooled layouts), indexed by the labels.
    """

    sets: dict[str, SetArrays]
    keys: dict[str, str] = field(default_factory=dict)
    images: np.ndarray | None = None
    explicit: set[str] = field(default_factory=set)  # roles the user named


# --------------------------------------------------------------------------------------------
# Pairs of training and test arrays
# --------------------------------------------------------------------------------------------


def train_test_pairs(names: list[str]) -> dict[str, tuple[str, str]]:
    """``{stem: (training name, test name)}`` for every array that has a test partner."""
    lower = {n.lower(): n for n in names}
    pairs: dict[str, tuple[str, str]] = {}
    for name in names:
        for stem, partners in _partner_candidates(name):
            test = next((lower[p] for p in partners if p in lower), None)
            if test is not None and stem and stem not in pairs:
                pairs[stem] = (name, test)
                break
    return pairs


def _partner_candidates(name: str) -> list[tuple[str, list[str]]]:
    low = name.lower()
    out = []
    for suffix in _TRAIN_SUFFIXES:
        if low.endswith(suffix) and len(low) > len(suffix):
            stem = low[: -len(suffix)]
            out.append((stem.rstrip("_"), [stem + t for t in _TEST_SUFFIXES]))
    for prefix in _TRAIN_PREFIXES:
        if low.startswith(prefix) and len(low) > len(prefix):
            stem = low[len(prefix) :]
            out.append((stem, [t + stem for t in _TEST_PREFIXES]))
    return out


# --------------------------------------------------------------------------------------------
# Roles
# --------------------------------------------------------------------------------------------


def _kind(x: np.ndarray) -> str:
    """ "label" (one value per sample), "images" (3-D or more) or "matrix" (2-D)."""
    a = np.asarray(x)
    if a.dtype.kind in "USO" or a.ndim <= 1 or (min(a.shape) == 1 and a.ndim == 2):
        return "label"
    return "images" if a.ndim >= 3 else "matrix"


def _is_square_image_width(width: int) -> bool:
    for channels in (1, 3):
        side = math.isqrt(width // channels)
        if width % channels == 0 and side >= 8 and side * side * channels == width:
            return True
    return False


def _by_name(stems: list[str], names: tuple[str, ...]) -> str | None:
    found = [s for s in stems if s.lower().strip("_/") in names]
    return found[0] if len(found) == 1 else None


def _assign_roles(samples: dict[str, np.ndarray]) -> dict[str, str]:
    """Role -> stem, from each stem's training array (shape first, then names)."""
    kinds = {stem: _kind(x) for stem, x in samples.items()}
    matrices = [s for s, k in kinds.items() if k == "matrix"]
    roles: dict[str, str] = {}
    voxels = _by_name(matrices, VOXEL_NAMES)
    if voxels is None and len(matrices) == 1:
        voxels = matrices[0]
    if voxels is None and len(matrices) == 2:
        square = [s for s in matrices if _is_square_image_width(samples[s].shape[1])]
        voxels = next(s for s in matrices if s not in square) if len(square) == 1 else None
    if voxels is None:
        raise DataError(
            "Cannot tell the voxels from the other training arrays "
            f"({', '.join(f'{s} {samples[s].shape}' for s in matrices) or 'none is 2-D'}); "
            "name them with --voxels-key TRAIN,TEST."
        )
    roles["voxels"] = voxels
    pictures = [s for s, k in kinds.items() if k == "images"] + [s for s in matrices if s != voxels]
    images = _by_name(pictures, IMAGE_NAMES) or (pictures[0] if len(pictures) == 1 else None)
    if images is not None:
        roles["images"] = images
    labels = [s for s, k in kinds.items() if k == "label" and s.lower() not in RUN_NAMES]
    label = _by_name(labels, LABEL_NAMES) or (labels[0] if len(labels) == 1 else None)
    if label is not None:
        roles["labels"] = label
    run = _by_name([s for s, k in kinds.items() if k == "label"], RUN_NAMES)
    if run is not None:
        roles["runs"] = run
    return roles


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------


def _explicit_pair(arrays: dict[str, np.ndarray], key: str, what: str) -> tuple[str, str]:
    parts = [p.strip() for p in key.split(",")]
    if len(parts) != 2 or not all(parts):
        raise DataError(f"--{what}-key {key!r}: give one array name or TRAIN,TEST.")
    for part in parts:
        if part not in arrays:
            raise DataError(f"No array {part!r} in the source; it holds {describe(arrays)}.")
    return parts[0], parts[1]


def separate_layout(
    arrays: dict[str, np.ndarray],
    voxels_key: str | None,
    labels_key: str | None,
    images_key: str | None,
) -> Layout | None:
    """The layout of separate training and test arrays, or None if the source is pooled."""
    explicit = {"voxels": voxels_key, "labels": labels_key, "images": images_key}
    if voxels_key is not None and "," not in voxels_key:
        return None
    pairs = train_test_pairs(list(arrays))
    if voxels_key is None and (not pairs or any(k.lower() == "voxels" for k in arrays)):
        return None
    chosen: dict[str, tuple[str, str]] = {}
    if voxels_key is None:
        if not any(_kind(arrays[train]) == "matrix" for train, _ in pairs.values()):
            return None  # pairs of labels or runs only: a pooled source
        roles = _assign_roles({stem: arrays[train] for stem, (train, _) in pairs.items()})
        chosen = {role: pairs[stem] for role, stem in roles.items()}
    for role, key in explicit.items():
        if key is not None and key.lower() == "none":
            chosen.pop(role, None)
        elif key is not None:
            chosen[role] = _explicit_pair(arrays, key, role)
    sets = {}
    for index, set_name in enumerate(("training", "test")):
        got = {role: np.asarray(arrays[names[index]]) for role, names in chosen.items()}
        sets[set_name] = SetArrays(
            voxels=got["voxels"],
            labels=got.get("labels"),
            images=got.get("images"),
            runs=None if "runs" not in got else got["runs"].astype(float).ravel(),
        )
    keys = {role: ",".join(names) for role, names in chosen.items()}
    return Layout(sets=sets, keys=keys, explicit={r for r, k in explicit.items() if k})


def detect_layout(
    arrays: dict[str, np.ndarray],
    voxels_key: str | None = None,
    labels_key: str | None = None,
    images_key: str | None = None,
) -> Layout | None:
    """Separate training/test arrays if the source has them, else None (pooled layout).

    Parameters
    ----------
    arrays : every array of the source, by name (HDF5 groups as ``group/name``).
    voxels_key, labels_key, images_key : explicit names, ``TRAIN,TEST`` for separate
        sets; ``labels_key="none"`` means one image per sample.

    Returns
    -------
    Layout or None
    """
    return separate_layout(arrays, voxels_key, labels_key, images_key)


def describe(arrays: dict[str, np.ndarray]) -> str:
    """``name (shape), ...`` of every array, for messages."""
    return ", ".join(f"{k} {tuple(np.shape(v))}" for k, v in arrays.items()) or "no arrays"


# --------------------------------------------------------------------------------------------
# Flat images
# --------------------------------------------------------------------------------------------


def parse_images_shape(text: str | None) -> tuple[int, int] | None:
    """``"28x28"`` -> (28, 28); None or "" -> None."""
    if not text:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text)
    if not match or 0 in (int(match[1]), int(match[2])):
        raise DataError(f"--images-shape {text!r}: give height x width, such as 28x28.")
    return int(match[1]), int(match[2])


def flat_to_images(
    flat: np.ndarray, shape: tuple[int, int] | None = None, order: str = "C"
) -> np.ndarray:
    """(n, H*W[*3]) rows of flattened images -> (n, H, W[, 3]).

    Parameters
    ----------
    flat : 2-D array, one image per row.
    shape : (H, W); default the square the row length is (side^2 or 3 side^2).
    order : "C" for row-major rows (NumPy), "F" for column-major rows (MATLAB's ``img(:)``).

    Returns
    -------
    ndarray
    """
    x = np.asarray(flat)
    order = order.upper()
    if order not in ("C", "F"):
        raise DataError(f"--images-order {order!r}: give C (row-major) or F (MATLAB column-major).")
    n, width = x.shape
    if shape is None:
        side = math.isqrt(width)
        rgb_side = math.isqrt(width // 3)
        if side * side == width:
            shape = (side, side)
        elif rgb_side * rgb_side * 3 == width:
            shape = (rgb_side, rgb_side)
        else:
            raise DataError(
                f"The images are flat rows of {width} values, not a square (side^2 or "
                "3 side^2); give their size with --images-shape HxW."
            )
    h, w = shape
    if width not in (h * w, 3 * h * w):
        raise DataError(
            f"--images-shape {h}x{w} does not fit rows of {width} values "
            f"({h * w} grey or {3 * h * w} colour)."
        )
    full = (h, w) if width == h * w else (h, w, 3)
    if order == "C":
        return x.reshape((n, *full))
    # Column-major rows: reverse the axes of each row, then put them back in order.
    reversed_axes = tuple(range(len(full), 0, -1))
    return x.reshape((n, *full[::-1])).transpose((0, *reversed_axes))
