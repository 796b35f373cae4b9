"""Which image each imported sample shows: labels, one image per sample, class labels refused.

A label array can mean two things. Either it says which image a sample shows (an index
into the images, a lab stimulus id, a file name), and samples with the same label show
the same image; or it holds a class (a digit, a category), and many different images
share one value. Only the first kind pairs voxels with images; importing the second
kind would merge different images into one and train on the wrong targets. So a label
array is refused when it has far fewer distinct values than there are images, and when
samples with one label show different images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from e2e_recon.data.importing.layouts import Layout
from e2e_recon.data.labels import id_to_name
from e2e_recon.errors import DataError

__all__ = ["Pairing", "pair_images", "usable_voxels"]

# "Far fewer": a label array with fewer distinct values than 1 in CLASS_RATIO of the
# images is a class label (2 digits for 100 images), not an image identity.
CLASS_RATIO = 4

ONE_PER_SAMPLE_HINT = (
    "To import one image per sample (each sample's own row of the images array), pass "
    "--labels-key none (label_key='none')."
)


@dataclass
class Pairing:
    """Per set: (voxels, one image key per sample, runs); images by key when from an array."""

    sets: dict[str, tuple[np.ndarray, list[str], np.ndarray]]
    image_of: dict[str, np.ndarray] | None
    per_sample: bool
    notes: list[str]


def usable_voxels(voxels: np.ndarray, what: str) -> np.ndarray:
    """``voxels`` as float64 (samples x voxels), refusing data nothing can be learnt from.

    Refused: values that are not real numbers (text, complex: the imaginary part would be
    dropped silently), no voxel columns, and a set in which no value is finite.
    Some NaN or inf values are kept (the summary counts them; training refuses them).
    """
    x = np.asarray(voxels)
    if x.dtype.kind == "c":
        raise DataError(
            f"The {what} voxels are complex numbers ({x.dtype}); store the real values (or "
            "their magnitude) in the source: the imaginary part would be dropped."
        )
    if x.dtype.kind not in "fiub":
        raise DataError(
            f"The {what} voxels hold {x.dtype} values, not numbers; voxels must be a numeric "
            "samples x voxels array."
        )
    if x.ndim != 2 or x.shape[1] == 0:
        raise DataError(
            f"The {what} voxels have shape {x.shape}: no voxel columns; voxels must be "
            "samples x voxels with at least one voxel."
        )
    x = x.astype(np.float64)
    if x.size and not np.isfinite(x).any():
        raise DataError(
            f"Every {what} voxel value is NaN or inf ({x.shape[0]} samples x {x.shape[1]} "
            "voxels); there is no signal to learn from. Check how the array was exported."
        )
    return x


def label_keys(labels: np.ndarray, label_base: int) -> list[str]:
    """One string per sample identifying its image: an index, a lab name, or a file stem."""
    flat = np.asarray(labels).ravel()
    if flat.dtype.kind in "US":
        keys = [str(x.decode() if isinstance(x, bytes) else x).strip() for x in flat]
        if "" in keys:
            raise DataError(
                f"The label of sample {keys.index('')} (0-based row of the labels) is empty; "
                "every sample needs the label of its image."
            )
        return keys
    values = flat.astype(np.float64)
    if not np.isfinite(values).all():
        raise DataError("The labels hold NaN or inf; every sample needs the label of its image.")
    if np.all(values == np.round(values)):
        return [str(int(v) - label_base) for v in values]
    return [id_to_name(float(v)) for v in values]  # lab stimulus ids


def _is_class_label(keys: list[str], images: np.ndarray) -> bool:
    """True if the labels group different images (per-sample images) under one value."""
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        j = first.setdefault(key, i)
        if j != i and not np.array_equal(images[i], images[j]):
            return True
    return False


def _class_label_error(name: str, n_distinct: int, n_images: int) -> DataError:
    return DataError(
        f"The label array {name!r} holds only {n_distinct} distinct values for {n_images} "
        "different images: these are class labels (a digit, a category), not the identity "
        f"of each sample's image, and would merge different images into one. "
        f"{ONE_PER_SAMPLE_HINT}"
    )


def pair_images(
    layout: Layout,
    to_images: Callable[[np.ndarray], np.ndarray],
    label_base: int = 0,
    have_images_dir: bool = False,
) -> Pairing:
    """Decide each sample's image key, checking the labels against the images.

    Parameters
    ----------
    layout : arrays by set, from :mod:`e2e_recon.data.importing.layouts` or the pooled reader.
    to_images : turns an images array into (n, H, W, 3) uint8 (flat rows reshaped).
    label_base : 1 for MATLAB-style 1-based integer labels.
    have_images_dir : images come from a folder of files named by label.

    Returns
    -------
    Pairing
    """
    explicit_labels = "labels" in layout.explicit
    label_name = layout.keys.get("labels", "labels")
    shared = to_images(layout.images) if layout.images is not None else None
    sets: dict[str, tuple[np.ndarray, list[str], np.ndarray]] = {}
    image_of: dict[str, np.ndarray] | None = None if have_images_dir and shared is None else {}
    notes: list[str] = []
    per_sample = False
    shared_keys: set[str] = set()
    if all(np.asarray(a.voxels).shape[0] == 0 for a in layout.sets.values()):
        shapes = ", ".join(f"{k} {np.shape(a.voxels)}" for k, a in layout.sets.items())
        raise DataError(f"The source holds no samples (voxels: {shapes}); nothing to import.")
    for set_name, arrays in layout.sets.items():
        voxels = np.asarray(arrays.voxels)
        n = voxels.shape[0]
        if n == 0:
            continue
        voxels = usable_voxels(voxels, set_name)
        runs = np.ones(n) if arrays.runs is None else np.asarray(arrays.runs, float).ravel()
        own = to_images(arrays.images) if arrays.images is not None else None
        labels = arrays.labels
        if labels is not None and np.asarray(labels).size != n:
            raise DataError(
                f"{set_name} voxels have {n} samples but the labels have "
                f"{np.asarray(labels).size} entries; they must match (one label per sample)."
            )
        keys = None if labels is None else label_keys(np.asarray(labels), label_base)
        if own is not None and own.shape[0] == n:
            if keys is not None and _is_class_label(keys, own):
                if explicit_labels:
                    raise _class_label_error(label_name, len(set(keys)), n)
                notes.append(
                    f"{label_name} ({set_name}) holds class labels ({len(set(keys))} values for "
                    f"{n} different images): not used; each sample has its own image"
                )
                keys = None
            if keys is None:
                per_sample = True
                keys = [f"{set_name}_{i + 1}" for i in range(n)]
                assert image_of is not None
                image_of.update((k, own[i]) for i, k in enumerate(keys))
            else:
                assert image_of is not None
                for i, key in enumerate(keys):
                    image_of.setdefault(key, own[i])
        else:
            if keys is None:
                raise DataError(
                    f"No labels for the {set_name} samples and no images array with one row "
                    f"per sample ({n} samples); name the label array with --labels-key."
                )
            if own is not None:  # this set's own images, indexed by its labels
                _check_classes(keys, own.shape[0], label_name)
                keys = _indexed(keys, own, f"{set_name}:", image_of)
            elif shared is not None:
                keys = _indexed(keys, shared, "", image_of)
                shared_keys.update(keys)
        sets[set_name] = (voxels, keys, runs)
    if "training" not in sets:
        raise DataError("Every sample is marked as test: there is nothing to train on.")
    if shared is not None and shared_keys:
        _check_classes(sorted(shared_keys), shared.shape[0], label_name)
    return Pairing(sets, image_of, per_sample, notes)


def _check_classes(keys: list[str], n_images: int, label_name: str) -> None:
    n_distinct = len(set(keys))
    if n_distinct * CLASS_RATIO < n_images:
        raise _class_label_error(label_name, n_distinct, n_images)


def _indexed(
    keys: list[str], pool: np.ndarray, prefix: str, image_of: dict[str, np.ndarray] | None
) -> list[str]:
    """Keys that index ``pool`` (prefixed), with their images put in ``image_of``."""
    distinct = sorted(set(keys))
    assert image_of is not None
    for key in distinct:
        index = int(key) if key.lstrip("-").isdigit() else -1
        if not 0 <= index < pool.shape[0]:
            raise DataError(
                f"Label {key} does not index the images array ({pool.shape[0]} images; "
                "labels are 0-based, use label_base=1 / --label-base 1 for 1-based)."
            )
        image_of[prefix + key] = pool[index]
    return [prefix + k for k in keys]
