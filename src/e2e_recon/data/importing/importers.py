"""Import your own recordings (``.mat`` or ``.npz`` arrays) as BData files and an image folder.

Expected arrays (names are looked up in this order unless given explicitly):

===================  =====================================  ===================================
what                 default names                          shape / content
===================  =====================================  ===================================
voxels               voxels, X, fmri, brain, data           (n_samples, n_voxels), float
labels               labels, y, stimulus, stim, label       (n_samples,): which image each
                                                            sample shows: an integer index into
                                                            ``images`` (0-based; ``label_base=1``
                                                            for MATLAB-style 1-based), a lab
                                                            stimulus id (1518878.005958), or a
                                                            string (image name / file stem)
images (optional)    images, stimuli, imgs                  (n_images, H, W[, 3]) uint8 or
                                                            float 0-1; also (H, W, 3, n_images)
                                                            as MATLAB stores it
split (optional)     split, is_test, test                   (n_samples,): 1/True/'test' marks a
                                                            test sample, 0/False/'train' training
separate sets        train_voxels + test_voxels,            used when there is no ``voxels``
                     train_labels + test_labels
ROIs (optional)      roi_<NAME>                             (n_voxels,) 0/1 -> key ROI_<NAME>;
                                                            without any, every voxel is ROI_VC
voxel_xyz (opt.)     voxel_xyz                              (n_voxels, 3) coordinates
runs (optional)      runs, run                              (n_samples,) run numbers
===================  =====================================  ===================================

Separate training and test arrays (``fmriTrn``/``fmriTest``, ``X_train``/``X_test``,
groups ``train/``/``test/`` of HDF5 and v7.3 files, ...) are detected by
:mod:`e2e_recon.data.importing.layouts`; flat images (one image per row) are reshaped to their
square or ``images_shape``, read column-major with ``images_order="F"`` (MATLAB). Without
a label array each sample has its own image; class labels are refused
(:mod:`e2e_recon.data.importing.pairing`). The summary names the arrays used and the command that
repeats the choice with explicit keys.

Images come from the ``images`` array or from ``images_dir`` (files whose stem is the
label: ``12.png`` for label 12, ``cat.jpg`` for label "cat", ``n01518878_5958.JPEG``).

Output, in the layout of the lab's data (and of ``e2e-recon simulate``)::

    OUT/fmri/<subject>_perceptionNaturalImageTraining_original_VC.h5
    OUT/fmri/<subject>_perceptionNaturalImageTest_original_VC.h5   (if there are test samples;
         <subject>_<set name>_original_VC.h5 with set_name, which the file's header records)
    OUT/images/training/<name>.<ext>   OUT/images/test/<name>.<ext> (or images/<set name>/)
    OUT/images/names.csv               stimulus_id, name, original label

Labels that are not lab stimulus ids get ids ``0.000001, 0.000002, ...`` (names
``n00000000_1`` ...); ``names.csv`` and the files' ``stimulus_id`` vmap keep the originals.
Everything is written to a temporary folder first and moved into place at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from e2e_recon.data.importing.import_preview import preview_summary
from e2e_recon.data.importing.import_writer import Volume, write_import
from e2e_recon.data.importing.layouts import (
    Layout,
    SetArrays,
    describe,
    detect_layout,
    flat_to_images,
    parse_images_shape,
)
from e2e_recon.data.importing.pairing import Pairing, pair_images
from e2e_recon.data.importing.source_checks import (
    check_h5_dataset,
    check_mat_v5,
    check_memory,
    check_npz,
)
from e2e_recon.errors import DataError

__all__ = ["images_to_uint8", "import_arrays", "load_arrays"]

_CANDIDATES = {
    "voxels": ("voxels", "X", "fmri", "brain", "data"),
    "labels": ("labels", "y", "stimulus", "stim", "label"),
    "images": ("images", "stimuli", "imgs"),
    "split": ("split", "is_test", "test"),
    "runs": ("runs", "run"),
}


# --------------------------------------------------------------------------------------------
# Reading arrays
# --------------------------------------------------------------------------------------------


def load_arrays(source: str | Path) -> dict[str, np.ndarray]:
    """Read every array of a ``.npz``, ``.mat`` (v5/v7 via scipy, v7.3 via h5py) or HDF5 file.

    MATLAB arrays come back in MATLAB's axis order (v7.3 files are un-transposed);
    cell arrays of strings and char arrays become arrays of str. Arrays inside HDF5
    groups are named ``group/name`` (``train/X``, ``test/X``).
    """
    path = Path(source)
    if not path.is_file():
        raise DataError(f"Import source not found: {path}.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            check_npz(path)  # declared sizes against the archive and memory, before reading
            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        if suffix == ".mat":
            return _load_mat(path)
        if suffix in (".h5", ".hdf5"):
            return _load_hdf5(path, matlab=False)
    except DataError:
        raise
    except Exception as err:  # numpy/scipy/h5py raise many types for a damaged file
        raise DataError(f"Cannot read {path} ({type(err).__name__}: {err}).") from err
    raise DataError(
        f"{path}: unsupported file type {suffix!r}; give a .mat, .npz or .h5 file "
        "(NIfTI betas: give their folder, or the 4-D .nii/.nii.gz file)."
    )


def _load_mat(path: Path) -> dict[str, np.ndarray]:
    import h5py
    import scipy.io

    if h5py.is_hdf5(path):  # MATLAB v7.3
        return _load_hdf5(path, matlab=True)
    check_mat_v5(path)
    raw = scipy.io.loadmat(path, squeeze_me=False, chars_as_strings=True)
    return {k: _mat_array(v) for k, v in raw.items() if not k.startswith("__")}


def _load_hdf5(path: Path, matlab: bool) -> dict[str, np.ndarray]:
    import h5py

    nodes: dict[str, Any] = {}

    def visit(name: str, node: Any) -> None:
        if isinstance(node, h5py.Dataset) and not name.split("/")[0].startswith("#"):
            nodes[name] = node

    with h5py.File(path, "r") as h5:
        h5.visititems(visit)
        # Every declared size against the file and memory before anything is read.
        check_memory([check_h5_dataset(node, path) for node in nodes.values()])
        return {
            name: _h5_matlab_array(h5, node, path) if matlab else np.asarray(node[()])
            for name, node in nodes.items()
        }


def _h5_matlab_array(h5: Any, node: Any, path: Path) -> np.ndarray:
    import h5py

    if h5py.check_dtype(ref=node.dtype) is not None:  # a cell array: strings or numbers
        cells = [h5[ref] for ref in np.asarray(node[()]).T.ravel()]
        check_memory([check_h5_dataset(cell, path) for cell in cells])
        items = [cell[()] for cell in cells]
        return np.array([_char_codes_to_str(x) for x in items])
    data = np.asarray(node[()]).T  # MATLAB stores column-major
    if node.attrs.get("MATLAB_class", b"") in (b"char", "char"):
        return np.array(["".join(chr(c) for c in row if c) for row in np.atleast_2d(data)])
    return data


def _char_codes_to_str(codes: np.ndarray) -> str:
    return "".join(chr(int(c)) for c in np.asarray(codes).ravel() if int(c))


def _mat_array(value: np.ndarray) -> np.ndarray:
    if value.dtype == object:  # cell array (of strings)
        return np.array([str(np.asarray(v).squeeze()) for v in value.ravel()])
    if value.dtype.kind == "U":
        return np.array([s.strip() for s in value.ravel()])
    return value


def _pick(
    arrays: dict[str, np.ndarray], what: str, key: str | None, required: bool
) -> tuple[str | None, Any]:
    """(name, array) of the ``what`` array: the explicit key, else the first default name."""
    if key is not None:
        if key not in arrays:
            raise DataError(f"No array {key!r} in the source; it holds {describe(arrays)}.")
        return key, arrays[key]
    for name in _CANDIDATES[what]:
        if name in arrays:
            return name, arrays[name]
    if required:
        raise DataError(
            f"No {what} array found (looked for {', '.join(_CANDIDATES[what])}, and for "
            "separate training/test arrays such as fmriTrn/fmriTest or X_train/X_test); "
            f"the source holds {describe(arrays)}. Name it with --{what}-key "
            "(TRAIN,TEST for separate arrays)."
        )
    return None, None


# --------------------------------------------------------------------------------------------
# Labels, split and images
# --------------------------------------------------------------------------------------------


def _split_mask(split: np.ndarray | None, n: int) -> np.ndarray:
    """Boolean mask of test samples."""
    if split is None:
        return np.zeros(n, dtype=bool)
    flat = np.asarray(split).ravel()
    if flat.size != n:
        raise DataError(f"The split array has {flat.size} entries for {n} samples.")
    if flat.dtype.kind in "US":
        words = np.char.lower(flat.astype(str))
        unknown = sorted(set(words) - {"train", "training", "test"})
        if unknown:
            raise DataError(f"Split values must be 'train' or 'test', got {unknown[:5]}.")
        return np.asarray(words == "test")
    return flat.astype(bool)


def images_to_uint8(
    images: np.ndarray, shape: tuple[int, int] | None = None, order: str = "C"
) -> np.ndarray:
    """Image array as (n, H, W, 3) uint8, from (n,H,W), (n,H,W,3), (n,3,H,W), (H,W,3,n)
    or flat rows (n, H*W[*3]), reshaped to ``shape`` (default their square) in ``order``."""
    x = np.asarray(images)
    if x.size == 0:
        raise DataError(f"The images array has shape {x.shape}: it holds no images.")
    if x.ndim == 2:
        x = flat_to_images(x, shape, order)
    if x.ndim == 4 and x.shape[-1] not in (1, 3) and x.shape[2] in (1, 3):
        x = np.moveaxis(x, -1, 0)  # MATLAB (H, W, 3, n)
    elif x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        x = np.moveaxis(x, 1, -1)  # channels first
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(
            f"Images array has shape {images.shape}; expected (n, H, W[, 3]) or flat rows."
        )
    if x.dtype.kind not in "fiub":
        raise DataError(f"The images array holds {x.dtype} values; images must be numbers.")
    if x.dtype != np.uint8:
        x = x.astype(np.float64)
        if not np.isfinite(x).all():
            bad = int(np.argwhere(~np.isfinite(x))[0][0])
            raise DataError(
                f"The images array holds NaN or inf (first in image {bad}, 0-based); images "
                "must be finite (uint8 0-255, or float 0-1)."
            )
        x = np.clip(np.round(x * 255.0 if x.max() <= 1.0 else x), 0, 255).astype(np.uint8)
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def _rois(arrays: dict[str, np.ndarray], n_voxels: int) -> dict[str, np.ndarray]:
    rois = {}
    for key, value in arrays.items():
        if key.lower().startswith("roi_"):
            mask = np.asarray(value).ravel()
            if mask.size != n_voxels:
                raise DataError(f"ROI array {key!r} has {mask.size} entries for {n_voxels} voxels.")
            rois["ROI_" + key[4:]] = mask != 0
    return rois or {"ROI_VC": np.ones(n_voxels, dtype=bool)}


# --------------------------------------------------------------------------------------------
# The import
# --------------------------------------------------------------------------------------------


def _pooled_layout(
    arrays: dict[str, np.ndarray],
    voxels_key: str | None,
    labels_key: str | None,
    images_key: str | None,
    split_key: str | None,
) -> Layout:
    """Training and test sets cut from pooled arrays by the split array."""
    voxels_name, voxels = _pick(arrays, "voxels", voxels_key, True)
    no_labels = labels_key is not None and labels_key.lower() == "none"
    labels_name, labels = (None, None) if no_labels else _pick(arrays, "labels", labels_key, False)
    images_name, images = _pick(arrays, "images", images_key, False)
    if labels is not None:
        _check_counts(voxels, labels, voxels_name or "voxels", labels_name or "labels")
    voxels = np.asarray(voxels)
    if voxels.ndim != 2:
        raise DataError(f"{voxels_name} must be 2-D (samples x voxels), got shape {voxels.shape}.")
    n = voxels.shape[0]
    runs_name, runs = _pick(arrays, "runs", None, False)
    runs = np.ones(n) if runs is None else np.asarray(runs, float).ravel()
    if runs.size != n:
        raise DataError(f"The runs array {runs_name!r} has {runs.size} entries for {n} samples.")
    split_name, split = _pick(arrays, "split", split_key, False)
    test = _split_mask(split, n)
    # An images array with one row per sample is cut with the samples.
    per_sample = images is not None and _n_images(images) == n
    sets = {}
    for set_name, mask in (("training", ~test), ("test", test)):
        sets[set_name] = SetArrays(
            voxels=voxels[mask],
            labels=None if labels is None else np.asarray(labels).ravel()[mask],
            images=np.asarray(images)[_image_axis_index(images, mask)] if per_sample else None,
            runs=runs[mask],
        )
    named = {"voxels": voxels_name, "labels": labels_name, "images": images_name}
    keys = {role: name for role, name in named.items() if name}
    if split_name:
        keys["split"] = split_name
    if no_labels:
        keys["labels"] = "none"
    explicit = {r for r, k in (("labels", labels_key), ("images", images_key)) if k}
    return Layout(sets=sets, keys=keys, images=None if per_sample else images, explicit=explicit)


def _n_images(images: Any) -> int:
    x = np.asarray(images)
    matlab = x.ndim == 4 and x.shape[-1] not in (1, 3) and x.shape[2] in (1, 3)
    return int(x.shape[-1] if matlab else x.shape[0])


def _image_axis_index(images: Any, mask: np.ndarray) -> Any:
    x = np.asarray(images)
    matlab = x.ndim == 4 and x.shape[-1] not in (1, 3) and x.shape[2] in (1, 3)
    return (Ellipsis, mask) if matlab else mask


def _check_counts(voxels: Any, labels: Any, voxels_name: str, labels_name: str) -> None:
    voxels, labels = np.asarray(voxels), np.asarray(labels)
    if voxels.ndim != 2:
        raise DataError(f"{voxels_name} must be 2-D (samples x voxels), got shape {voxels.shape}.")
    if labels.size != voxels.shape[0]:
        raise DataError(
            f"{voxels_name} has {voxels.shape[0]} samples (shape {voxels.shape}) but "
            f"{labels_name} has {labels.size} entries (shape {labels.shape}); they must match "
            "(one label per sample). Transposed? Voxels are samples x voxels."
        )


def _check_set_shapes(layout: Layout) -> None:
    for set_name, arrays in layout.sets.items():
        v = np.asarray(arrays.voxels)
        if v.ndim != 2:
            raise DataError(f"{set_name} voxels must be 2-D (samples x voxels), got {v.shape}.")
    widths = {np.asarray(a.voxels).shape[1] for a in layout.sets.values() if len(a.voxels)}
    if len(widths) > 1:
        raise DataError(f"Training and test voxels have different widths: {sorted(widths)}.")


def import_arrays(
    source: str | Path,
    out_dir: str | Path,
    subject: str = "sub-01",
    voxels_key: str | None = None,
    images_key: str | None = None,
    labels_key: str | None = None,
    split_key: str | None = None,
    images_dir: str | Path | None = None,
    label_base: int = 0,
    overwrite: bool = False,
    images_shape: str | tuple[int, int] | None = None,
    images_order: str = "C",
    set_name: str | None = None,
) -> dict[str, Any]:
    """Turn a ``.mat``/``.npz``/``.h5`` of voxels, labels and images into BData files and images.

    Parameters
    ----------
    source : ``.mat`` (v5/v7 or v7.3), ``.npz`` or HDF5 file; array names in the module
        docstring; separate training/test arrays are detected.
    out_dir : output folder (gets ``fmri/`` and ``images/``).
    subject : subject name used in the file names.
    voxels_key, images_key, labels_key, split_key : array names, if not the defaults;
        ``"TRAIN,TEST"`` names separate arrays; ``labels_key="none"`` gives each sample
        its own image (the images array then has one row per sample).
    images_dir : folder of image files named by label, instead of an images array.
    label_base : 1 if integer labels count images from 1 (MATLAB style).
    overwrite : replace existing ``fmri/`` and ``images/`` in ``out_dir``.
    images_shape : (H, W) or ``"HxW"`` of flat images; default their square.
    images_order : ``"C"`` (row-major) or ``"F"`` (MATLAB column-major) for flat images.
    set_name : name of the test set (``digits``); default the lab's natural-image test set.

    Returns
    -------
    dict
        Paths written, counts, the arrays used and the command repeating the choice.
    """
    arrays = load_arrays(source)
    layout = detect_layout(arrays, voxels_key, labels_key, images_key)
    if layout is None:
        layout = _pooled_layout(arrays, voxels_key, labels_key, images_key, split_key)
    _check_set_shapes(layout)
    shape = images_shape if isinstance(images_shape, tuple) else parse_images_shape(images_shape)
    flat: list[np.ndarray] = []  # flat image arrays, for the summary's note on their order

    def to_images(x: np.ndarray) -> np.ndarray:
        if np.ndim(x) == 2:
            flat.append(np.asarray(x))
        return images_to_uint8(x, shape, images_order)

    pairing = pair_images(layout, to_images, label_base, have_images_dir=images_dir is not None)
    n_voxels = pairing.sets["training"][0].shape[1]
    xyz = arrays.get("voxel_xyz")
    if xyz is not None and np.asarray(xyz).shape != (n_voxels, 3):
        raise DataError(f"voxel_xyz has shape {np.shape(xyz)}; expected ({n_voxels}, 3).")
    volume = Volume(_rois(arrays, n_voxels), None if xyz is None else np.asarray(xyz, float))
    summary = write_import(out_dir, pairing, volume, subject, images_dir, overwrite, set_name)
    summary.update(preview_summary(out_dir, summary, flat, shape, images_order))
    return {**summary, **_choices(source, out_dir, layout, pairing, shape, images_order)}


def _choices(
    source: str | Path,
    out_dir: str | Path,
    layout: Layout,
    pairing: Pairing,
    shape: tuple[int, int] | None,
    order: str,
) -> dict[str, Any]:
    """Which array became what, and the command that makes the same choice explicitly."""
    keys = dict(layout.keys)
    if pairing.per_sample:
        keys["labels"] = "none"
    out: dict[str, Any] = {f"{role}_from": name for role, name in keys.items()}
    if pairing.per_sample:
        out["labels_from"] = "none (one image per sample)"
    for i, note in enumerate(pairing.notes):
        out[f"note_{i + 1}"] = note
    parts = ["e2e-recon import", str(source), "--out", str(out_dir)]
    for role in ("voxels", "labels", "images", "split"):
        if role in keys:
            parts += [f"--{role}-key", keys[role]]
    images_used = layout.images is not None or any(
        a.images is not None for a in layout.sets.values()
    )
    if images_used and shape is not None:
        parts += ["--images-shape", f"{shape[0]}x{shape[1]}"]
    if images_used and order.upper() != "C":
        parts += ["--images-order", order.upper()]
    out["command"] = " ".join(parts)
    return out
