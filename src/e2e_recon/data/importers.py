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

Images come from the ``images`` array or from ``images_dir`` (files whose stem is the
label: ``12.png`` for label 12, ``cat.jpg`` for label "cat", ``n01518878_5958.JPEG``).

Output, in the layout of the lab's data (and of ``e2e-recon simulate``)::

    OUT/fmri/<subject>_perceptionNaturalImageTraining_original_VC.h5
    OUT/fmri/<subject>_perceptionNaturalImageTest_original_VC.h5   (if there are test samples)
    OUT/images/training/<name>.<ext>   OUT/images/test/<name>.<ext>
    OUT/images/names.csv               stimulus_id, name, original label

Labels that are not lab stimulus ids get ids ``0.000001, 0.000002, ...`` (names
``n00000000_1`` ...); ``names.csv`` and the files' ``stimulus_id`` vmap keep the originals.
Everything is written to a temporary folder first and moved into place at the end.
"""

from __future__ import annotations

import csv
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from e2e_recon.data.bdata import BData
from e2e_recon.data.images import find_image_files
from e2e_recon.data.labels import id_to_name, name_to_id
from e2e_recon.errors import DataError

__all__ = ["import_arrays", "load_arrays"]

_CANDIDATES = {
    "voxels": ("voxels", "X", "fmri", "brain", "data"),
    "labels": ("labels", "y", "stimulus", "stim", "label"),
    "images": ("images", "stimuli", "imgs"),
    "split": ("split", "is_test", "test"),
    "runs": ("runs", "run"),
}
_LAB_NAME = re.compile(r"n\d{8}_\d{1,6}")


# --------------------------------------------------------------------------------------------
# Reading arrays
# --------------------------------------------------------------------------------------------


def load_arrays(source: str | Path) -> dict[str, np.ndarray]:
    """Read every array of a ``.npz`` or ``.mat`` file (MATLAB v5/v7 via scipy, v7.3 via h5py).

    MATLAB arrays come back in MATLAB's axis order (v7.3 files are un-transposed);
    cell arrays of strings and char arrays become arrays of str.
    """
    path = Path(source)
    if not path.is_file():
        raise DataError(f"Import source not found: {path}.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        if suffix == ".mat":
            return _load_mat(path)
    except DataError:
        raise
    except Exception as err:  # numpy/scipy/h5py raise many types for a damaged file
        raise DataError(f"Cannot read {path} ({type(err).__name__}: {err}).") from err
    raise DataError(f"{path}: unsupported file type {suffix!r}; give a .mat or .npz file.")


def _load_mat(path: Path) -> dict[str, np.ndarray]:
    import h5py
    import scipy.io

    if h5py.is_hdf5(path):  # MATLAB v7.3
        out: dict[str, np.ndarray] = {}
        with h5py.File(path, "r") as h5:
            for key, node in h5.items():
                if isinstance(node, h5py.Dataset) and not key.startswith("#"):
                    out[key] = _h5_matlab_array(h5, node)
        return out
    raw = scipy.io.loadmat(path, squeeze_me=False, chars_as_strings=True)
    return {k: _mat_array(v) for k, v in raw.items() if not k.startswith("__")}


def _h5_matlab_array(h5: Any, node: Any) -> np.ndarray:
    import h5py

    if h5py.check_dtype(ref=node.dtype) is not None:  # a cell array: strings or numbers
        items = [h5[ref][()] for ref in np.asarray(node[()]).T.ravel()]
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


def _pick(arrays: dict[str, np.ndarray], what: str, key: str | None, required: bool) -> Any:
    if key is not None:
        if key not in arrays:
            raise DataError(f"No array {key!r} in the source; it holds {_describe(arrays)}.")
        return arrays[key]
    for name in _CANDIDATES[what]:
        if name in arrays:
            return arrays[name]
    if required:
        raise DataError(
            f"No {what} array found (looked for {', '.join(_CANDIDATES[what])}); the source "
            f"holds {_describe(arrays)}. Name it with --{what}-key."
        )
    return None


def _describe(arrays: dict[str, np.ndarray]) -> str:
    return ", ".join(f"{k} {tuple(v.shape)}" for k, v in arrays.items()) or "no arrays"


# --------------------------------------------------------------------------------------------
# Labels, split and images
# --------------------------------------------------------------------------------------------


def _label_keys(labels: np.ndarray, label_base: int) -> list[str]:
    """One string per sample identifying its image: an index, a lab name, or a file stem."""
    flat = np.asarray(labels).ravel()
    if flat.dtype.kind in "US":
        return [str(x.decode() if isinstance(x, bytes) else x).strip() for x in flat]
    values = flat.astype(np.float64)
    if not np.isfinite(values).all():
        raise DataError("The labels hold NaN or inf; every sample needs the label of its image.")
    if np.all(values == np.round(values)):
        return [str(int(v) - label_base) for v in values]
    return [id_to_name(float(v)) for v in values]  # lab stimulus ids


def _assign_ids(keys: list[str]) -> dict[str, tuple[float, str]]:
    """Map each distinct label to (stimulus id, image name)."""
    distinct = sorted(set(keys), key=lambda k: (len(k), k))
    if all(_LAB_NAME.fullmatch(k) for k in distinct):
        return {k: (name_to_id(k), k) for k in distinct}
    if len(distinct) > 999_999:
        raise DataError(f"{len(distinct)} distinct images: at most 999,999 can be imported.")
    return {k: ((i + 1) / 1e6, id_to_name((i + 1) / 1e6)) for i, k in enumerate(distinct)}


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


def _images_first(images: np.ndarray) -> np.ndarray:
    """Image array as (n, H, W, 3) uint8, from (n,H,W), (n,H,W,3), (n,3,H,W) or (H,W,3,n)."""
    x = np.asarray(images)
    if x.ndim == 4 and x.shape[-1] not in (1, 3) and x.shape[2] in (1, 3):
        x = np.moveaxis(x, -1, 0)  # MATLAB (H, W, 3, n)
    elif x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        x = np.moveaxis(x, 1, -1)  # channels first
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(f"Images array has shape {images.shape}; expected (n, H, W[, 3]).")
    if x.dtype != np.uint8:
        x = x.astype(np.float64)
        x = np.clip(np.round(x * 255.0 if x.max() <= 1.0 else x), 0, 255).astype(np.uint8)
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def _write_image_files(
    keys: list[str],
    ids: dict[str, tuple[float, str]],
    folder: Path,
    images: np.ndarray | None,
    images_dir: Path | None,
) -> None:
    """Write (from the array) or copy (from images_dir) one image per distinct label."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    distinct = sorted(set(keys), key=lambda k: ids[k][0])
    if images is not None:
        for key in distinct:
            index = int(key) if key.lstrip("-").isdigit() else -1
            if not 0 <= index < images.shape[0]:
                raise DataError(
                    f"Label {key} does not index the images array ({images.shape[0]} images; "
                    "labels are 0-based, use label_base=1 / --label-base 1 for 1-based)."
                )
            Image.fromarray(images[index]).save(folder / f"{ids[key][1]}.png")
        return
    if images_dir is None:
        raise DataError("No images: give an images array (--images-key) or --images-dir.")
    sources = find_image_files(images_dir, distinct)
    for key, src in zip(distinct, sources, strict=True):
        shutil.copyfile(src, folder / f"{ids[key][1]}{src.suffix}")


def _write_bdata(
    path: Path,
    voxels: np.ndarray,
    stim_ids: np.ndarray,
    runs: np.ndarray,
    rois: dict[str, np.ndarray],
    xyz: np.ndarray | None,
    names: dict[float, str],
) -> None:
    bd = BData()
    bd.add(voxels, "VoxelData")
    # The lab's label block: the reference code reads its column 1 as the stimulus id.
    bd.add(np.stack([np.arange(1, len(stim_ids) + 1, dtype=np.float64), stim_ids], 1), "Label")
    bd.add(stim_ids, "stimulus_id")
    bd.add(runs, "Run")
    bd.add(np.ones(len(stim_ids)), "Session")
    for key, mask in rois.items():
        bd.add_metadata(key, mask.astype(np.float64), f"1 = {key}", where="VoxelData")
    if xyz is not None:
        for axis, column in zip("xyz", xyz.T, strict=True):
            bd.add_metadata(f"voxel_{axis}", column, f"voxel {axis} coordinate", where="VoxelData")
    bd.add_vmap("stimulus_id", {i: names[i] for i in np.unique(stim_ids)})
    bd.save(path)


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


def _collect_sets(
    arrays: dict[str, np.ndarray],
    voxels_key: str | None,
    labels_key: str | None,
    split_key: str | None,
    label_base: int,
) -> dict[str, tuple[np.ndarray, list[str], np.ndarray]]:
    """{"training": (voxels, label keys, runs), "test": ...} with checked counts."""
    separate = voxels_key is None and "train_voxels" in arrays and "voxels" not in arrays
    parts: dict[str, tuple[Any, Any, Any]]
    if separate:
        parts = {
            "training": (
                arrays["train_voxels"],
                _pick(arrays, "labels", "train_labels", True),
                None,
            ),
            "test": (arrays.get("test_voxels"), arrays.get("test_labels"), None),
        }
    else:
        voxels = _pick(arrays, "voxels", voxels_key, True)
        labels = _pick(arrays, "labels", labels_key, True)
        _check_counts(voxels, labels, "voxels", "labels")
        runs = _pick(arrays, "runs", None, False)
        runs = np.ones(voxels.shape[0]) if runs is None else np.asarray(runs, float).ravel()
        if runs.size != voxels.shape[0]:
            raise DataError(
                f"The runs array has {runs.size} entries for {voxels.shape[0]} samples."
            )
        test = _split_mask(_pick(arrays, "split", split_key, False), voxels.shape[0])
        labels = np.asarray(labels).ravel()
        parts = {
            "training": (voxels[~test], labels[~test], runs[~test]),
            "test": (voxels[test], labels[test], runs[test]),
        }
    out: dict[str, tuple[np.ndarray, list[str], np.ndarray]] = {}
    for name, (vox, lab, run) in parts.items():
        if vox is None or np.asarray(vox).shape[0] == 0:
            continue
        if lab is None:
            raise DataError(f"{name} voxels given without labels (test_labels).")
        _check_counts(vox, lab, f"{name} voxels", f"{name} labels")
        vox = np.asarray(vox, dtype=np.float64)
        run = np.ones(vox.shape[0]) if run is None else run
        out[name] = (vox, _label_keys(np.asarray(lab), label_base), run)
    if "training" not in out:
        raise DataError("Every sample is marked as test: there is nothing to train on.")
    widths = {v[0].shape[1] for v in out.values()}
    if len(widths) > 1:
        raise DataError(f"Training and test voxels have different widths: {sorted(widths)}.")
    return out


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
) -> dict[str, Any]:
    """Turn a ``.mat``/``.npz`` of voxels, labels and images into BData files and image folders.

    Parameters
    ----------
    source : ``.mat`` (v5/v7 or v7.3) or ``.npz`` file; array names in the module docstring.
    out_dir : output folder (gets ``fmri/`` and ``images/``).
    subject : subject name used in the file names.
    voxels_key, images_key, labels_key, split_key : array names, if not the defaults.
    images_dir : folder of image files named by label, instead of an images array.
    label_base : 1 if integer labels count images from 1 (MATLAB style).
    overwrite : replace existing ``fmri/`` and ``images/`` in ``out_dir``.

    Returns
    -------
    dict
        Paths written and counts (samples, images, voxels, non-finite values).
    """
    arrays = load_arrays(source)
    sets = _collect_sets(arrays, voxels_key, labels_key, split_key, label_base)
    image_array = _pick(arrays, "images", images_key, False)
    images = _images_first(image_array) if image_array is not None else None
    ids = _assign_ids([k for _, keys, _ in sets.values() for k in keys])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    existing = [p for p in (out / "fmri", out / "images") if p.exists()]
    if existing and not overwrite:
        raise DataError(f"{existing[0]} already exists; choose another --out or pass --overwrite.")
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=out))
    try:
        n_voxels = sets["training"][0].shape[1]
        xyz = arrays.get("voxel_xyz")
        if xyz is not None and np.asarray(xyz).shape != (n_voxels, 3):
            raise DataError(f"voxel_xyz has shape {np.shape(xyz)}; expected ({n_voxels}, 3).")
        volume = (_rois(arrays, n_voxels), None if xyz is None else np.asarray(xyz, float))
        summary = _write_all(staging, sets, ids, images, images_dir, subject, volume)
        for sub in ("fmri", "images"):
            if (out / sub).exists():
                (out / sub).rename(staging / f"old-{sub}")
            (staging / sub).rename(out / sub)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {k: (str(out / v) if isinstance(v, Path) else v) for k, v in summary.items()}


def _write_all(
    root: Path,
    sets: dict[str, tuple[np.ndarray, list[str], np.ndarray]],
    ids: dict[str, tuple[float, str]],
    images: np.ndarray | None,
    images_dir: str | Path | None,
    subject: str,
    volume: tuple[dict[str, np.ndarray], np.ndarray | None],
) -> dict[str, Any]:
    n_voxels = sets["training"][0].shape[1]
    rois, xyz = volume
    names = {ident: name for ident, name in ids.values()}
    session = {"training": "perceptionNaturalImageTraining", "test": "perceptionNaturalImageTest"}
    summary: dict[str, Any] = {"n_voxels": n_voxels, "test_file": None}
    (root / "fmri").mkdir()
    for set_name, (voxels, keys, runs) in sets.items():
        rel = Path("fmri") / f"{subject}_{session[set_name]}_original_VC.h5"
        stim_ids = np.array([ids[k][0] for k in keys], dtype=np.float64)
        _write_bdata(root / rel, voxels, stim_ids, runs, rois, xyz, names)
        _write_image_files(
            keys, ids, root / "images" / set_name, images,
            Path(images_dir) if images_dir else None,
        )  # fmt: skip
        summary[f"{set_name}_file"] = rel
        summary[f"{set_name}_images_dir"] = Path("images") / set_name
        summary[f"n_{set_name}_samples"] = voxels.shape[0]
        summary[f"n_{set_name}_images"] = len(set(keys))
        summary[f"nonfinite_{set_name}_values"] = int((~np.isfinite(voxels)).sum())
    with open(root / "images" / "names.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["stimulus_id", "name", "original_label"])
        for key, (ident, name) in sorted(ids.items(), key=lambda kv: kv[1][0]):
            writer.writerow([f"{ident:f}", name, key])
    return summary
