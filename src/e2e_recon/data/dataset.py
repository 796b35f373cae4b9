"""Paired fMRI/image datasets: z-scored voxels, cached images, trial averaging, random crops.

Training: every fMRI sample is paired with the image shown (5 presentations of
one image are 5 samples). Each voxel column is z-scored with the training
mean and standard deviation (ddof 0) over all training samples; those statistics
(:class:`NormStats`) travel with the model so that test data is normalised the
same way.

Test: all presentations of each image are averaged (n counted per image, not
assumed), then z-scored with the training statistics. The test-time scale
``sqrt(n)`` is applied by the caller: ``scaled = voxels * sqrt(n_trials)[:, None]``.
Images are ordered by stimulus id, as the reference code's ``np.unique`` does.

Stimulus ids: taken from a metadata key ``stimulus_id`` when the file has one;
otherwise from ``select('Label')``: its column 1 (the second column, as the
reference code's ``get('Label')[:, 1]``) when the label block has several columns,
or its only column.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from e2e_recon.data.bdata import BData
from e2e_recon.data.home import image_cache_dir
from e2e_recon.data.image_files import cached_bgr_images, find_image_files
from e2e_recon.data.labels import id_to_name, stimulus_ids_of
from e2e_recon.data.sampler import CropSampler  # re-exported: batches of a TrainingSet
from e2e_recon.errors import DataError
from e2e_recon.fileio import safe_name

__all__ = [
    "CropSampler",
    "NormStats",
    "TestSet",
    "TrainingSet",
    "load_test_set",
    "load_training_set",
    "set_name_from_path",
]

PathLike = str | os.PathLike[str]

_RENAME_SET = "write a plain name there, e.g. by importing again with --set-name NAME"
_SET_NAMES = {
    "perceptionNaturalImageTest": "natural",
    "perceptionArtificialImage": "shapes",
    "perceptionLetterImage": "letters",
    "perceptionNaturalImageTraining": "training",
}


@dataclass(frozen=True)
class NormStats:
    """Training-set voxel statistics, stored with the model.

    Attributes
    ----------
    mean, std : ndarray, shape (V,), float32
        Per-voxel mean and standard deviation (ddof 0) over the training samples.
        Constant voxels get std 1 (their z-score is 0 instead of NaN).
    roi : str
        The selection expression the voxels came from.
    kept_columns : ndarray, shape (V_roi,), bool, optional
        Which of the ROI's columns were kept when non-finite columns were dropped.
    voxel_xyz : ndarray, shape (V, 3), float64, optional
        Voxel coordinates, used to check that a test file has the same voxels.
    """

    mean: np.ndarray
    std: np.ndarray
    roi: str
    kept_columns: np.ndarray | None = None
    voxel_xyz: np.ndarray | None = None

    def apply(self, voxels: np.ndarray) -> np.ndarray:
        """Z-score ``voxels`` (n, V) with these statistics; returns float32."""
        out = np.asarray(voxels, dtype=np.float32)
        out = out - self.mean
        out /= self.std
        return out

    def to_dict(self) -> dict[str, Any]:
        """Dict of tensors and strings for a checkpoint (``torch.load(weights_only=True)``)."""
        out: dict[str, Any] = {
            "mean": torch.from_numpy(np.array(self.mean, dtype=np.float32)),
            "std": torch.from_numpy(np.array(self.std, dtype=np.float32)),
            "roi": self.roi,
        }
        if self.kept_columns is not None:
            out["kept_columns"] = torch.from_numpy(np.array(self.kept_columns, dtype=bool))
        if self.voxel_xyz is not None:
            out["voxel_xyz"] = torch.from_numpy(np.array(self.voxel_xyz, dtype=np.float64))
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NormStats:
        """Inverse of :meth:`to_dict` (accepts tensors or arrays)."""

        def arr(x: Any, dtype: Any) -> np.ndarray | None:
            if x is None:
                return None
            x = x.numpy() if isinstance(x, torch.Tensor) else x
            return np.asarray(x, dtype=dtype)

        mean, std = arr(d["mean"], np.float32), arr(d["std"], np.float32)
        assert mean is not None and std is not None
        return cls(
            mean=mean,
            std=std,
            roi=str(d.get("roi", "")),
            kept_columns=arr(d.get("kept_columns"), bool),
            voxel_xyz=arr(d.get("voxel_xyz"), np.float64),
        )


@dataclass
class TestSet:
    """Trial-averaged, z-scored (not scaled) test patterns, one row per image.

    Attributes
    ----------
    voxels : (M, V) float32; n_trials : (M,) int64; stimulus_ids : (M,) float64;
    stimulus_names : list of str; images : (M, S, S, 3) uint8 BGR or None; set_name : str
    """

    __test__ = False  # not a pytest class

    voxels: np.ndarray
    n_trials: np.ndarray
    stimulus_ids: np.ndarray
    stimulus_names: list[str]
    images: np.ndarray | None
    set_name: str


@dataclass
class TrainingSet:
    """Training pairs: one row of ``voxels`` per fMRI sample, its image at ``image_index``.

    Attributes
    ----------
    voxels : (N, V) float32, z-scored; image_index : (N,) int64, row into ``images``;
    images : (M, S, S, 3) uint8 BGR (memory-mapped cache); stimulus_ids : (M,) float64;
    stimulus_names : list of str; norm : NormStats; val : held-out images (averaged) or None
    """

    voxels: np.ndarray
    image_index: np.ndarray
    images: np.ndarray
    stimulus_ids: np.ndarray
    stimulus_names: list[str]
    norm: NormStats
    val: TestSet | None = field(default=None)


# --------------------------------------------------------------------------------------------
# Reading fMRI files
# --------------------------------------------------------------------------------------------


def set_name_from_path(path: PathLike) -> str:
    """Short test-set name from a lab file name ("natural", "shapes", "letters"), else its stem."""
    stem = Path(path).stem
    for marker, name in _SET_NAMES.items():
        if marker in stem:
            return name
    return stem


def _read_roi(bdata: BData, roi: str) -> tuple[np.ndarray, np.ndarray | None]:
    """ROI voxels (n, V) float64 and their coordinates (V, 3) if the file has them."""
    mask = bdata.select_index(roi)
    if "VoxelData" in bdata.metadata_keys:
        stray = mask & (bdata.metadata("VoxelData") != 1)
        if stray.any():
            raise DataError(
                f"{bdata.path}: selection {roi!r} includes {int(stray.sum())} non-voxel columns "
                "(labels, run, session). 'KEY = 0' also matches those columns; write "
                f"'VoxelData - KEY' instead."
            )
    xyz = None
    if all(k in bdata.metadata_keys for k in ("voxel_x", "voxel_y", "voxel_z")):
        xyz = np.stack([bdata.metadata(k)[mask] for k in ("voxel_x", "voxel_y", "voxel_z")], 1)
    return bdata.dataset[:, mask], xyz


def _nonfinite_columns(voxels: np.ndarray, path: Any, drop_allowed: bool) -> np.ndarray:
    """Boolean mask of columns holding NaN/inf; raises unless dropping is allowed."""
    bad = ~np.isfinite(voxels).all(axis=0)
    if bad.any() and not drop_allowed:
        cols = np.flatnonzero(bad)
        raise DataError(
            f"{path}: {int((~np.isfinite(voxels)).sum())} non-finite voxel values (NaN or inf) in "
            f"{cols.size} columns of the ROI (column indices {cols[:10].tolist()}"
            f"{' ...' if cols.size > 10 else ''}). Fix the file, or drop those columns "
            "with the config key data.drop_nonfinite_voxels (command line: "
            "--set data.drop_nonfinite_voxels=true)."
        )
    return bad


def average_by_stimulus(
    voxels: np.ndarray, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean of all presentations per stimulus (any per-sample label: a stimulus id or an
    image row), sorted by it: (M, V) float64, counts (M,), the labels (M,)."""
    unique, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    sums = np.zeros((unique.size, voxels.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, voxels)
    return sums / counts[:, None], counts.astype(np.int64), unique


def _rows_as_float32(raw: np.ndarray, rows: np.ndarray, chunk: int = 512) -> np.ndarray:
    """``raw[rows]`` as float32, copied in chunks so no full float64 copy is made."""
    out = np.empty((rows.size, raw.shape[1]), dtype=np.float32)
    for start in range(0, rows.size, chunk):
        out[start : start + chunk] = raw[rows[start : start + chunk]]
    return out


def _images_for(
    ids: np.ndarray, images_dir: PathLike, size_px: int, cache_dir: PathLike | None
) -> tuple[np.ndarray, list[str]]:
    names = [id_to_name(float(i)) for i in ids]
    paths = find_image_files(images_dir, names)
    cache = Path(cache_dir) if cache_dir is not None else image_cache_dir()
    return cached_bgr_images(paths, size_px, cache), names


# --------------------------------------------------------------------------------------------
# Public loaders
# --------------------------------------------------------------------------------------------


def _split_images(
    unique_ids: np.ndarray, train_images: int, val_images: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Choose held-out and training images (whole images), each sorted by id."""
    if val_images < 0 or train_images < 0:
        raise DataError("train_images and val_images must be >= 0.")
    if val_images >= unique_ids.size:
        raise DataError(
            f"val_images={val_images} leaves no training image ({unique_ids.size} images)."
        )
    order = np.random.default_rng(seed).permutation(unique_ids.size)
    val = np.sort(unique_ids[order[:val_images]])
    rest = order[val_images:]
    if train_images:
        if train_images > rest.size:
            raise DataError(
                f"train_images={train_images} but only {rest.size} images are available."
            )
        rest = rest[:train_images]
    return np.sort(unique_ids[rest]), val


def _read_training_voxels(
    fmri_path: PathLike, roi: str, drop_nonfinite: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """ROI voxels (n, V) float64, stimulus ids (n,), kept-column mask and coordinates."""
    bdata = BData(fmri_path)
    raw, xyz = _read_roi(bdata, roi)  # (n, V_roi) float64
    ids = stimulus_ids_of(bdata)
    del bdata  # release the full array before the float32 copy
    bad = _nonfinite_columns(raw, fmri_path, drop_nonfinite)
    kept = None
    if bad.any():
        raw, kept = raw[:, ~bad], ~bad
        xyz = xyz[~bad] if xyz is not None else None
    return raw, ids, kept, xyz


def _fit_norm(
    voxels: np.ndarray, roi: str, kept: np.ndarray | None, xyz: np.ndarray | None
) -> NormStats:
    """Per-voxel mean and std (ddof 0) of training samples (n, V)."""
    mean = voxels.mean(axis=0, dtype=np.float64)
    std = voxels.std(axis=0, dtype=np.float64)
    std[std == 0] = 1.0
    return NormStats(mean.astype(np.float32), std.astype(np.float32), roi, kept, xyz)


def training_norm_stats(
    fmri_path: PathLike, roi: str = "ROI_VC = 1", drop_nonfinite: bool = False
) -> NormStats:
    """Normalisation statistics of a training file over all its samples (no images read).

    Used at test time when a model carries no statistics of its own (the released
    Caffe generators): the published procedure z-scores test patterns with the
    mean and standard deviation of the whole training set.
    """
    raw, _, kept, xyz = _read_training_voxels(fmri_path, roi, drop_nonfinite)
    return _fit_norm(_rows_as_float32(raw, np.arange(raw.shape[0])), roi, kept, xyz)


def training_responses(
    fmri_path: PathLike,
    roi: str = "ROI_VC = 1",
    drop_nonfinite: bool = False,
    norm: NormStats | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each training image's mean response, z-scored (no images read).

    Used to read a source subject's responses when a new subject is adapted from it
    (``train/adapt.py``). With ``norm`` (the statistics a model was trained with), its
    columns and statistics; without, every column of ``roi``, z-scored with the whole file.

    Returns
    -------
    responses : (M, V) float32, the mean over each image's presentations.
    stimulus_ids : (M,) float64, sorted.
    """
    raw, ids, kept, xyz = _read_training_voxels(fmri_path, roi, drop_nonfinite and norm is None)
    if norm is None:
        norm = _fit_norm(_rows_as_float32(raw, np.arange(raw.shape[0])), roi, kept, xyz)
    else:
        raw, _ = _columns_of(norm, raw, xyz, fmri_path, roi)
    means, _, unique = average_by_stimulus(raw, ids)  # (M, V), sorted ids
    return norm.apply(means), unique


def load_training_set(
    fmri_path: PathLike,
    images_dir: PathLike,
    roi: str = "ROI_VC = 1",
    image_size_px: int = 248,
    cache_dir: PathLike | None = None,
    train_images: int = 0,
    val_images: int = 0,
    seed: int = 0,
    drop_nonfinite: bool = False,
) -> TrainingSet:
    """Load a training BData file and its stimulus images as training pairs.

    Parameters
    ----------
    fmri_path : path to the training BData ``.h5``.
    images_dir : folder of stimulus images named by stimulus (``n01518878_5958.JPEG``).
    roi : selection expression for the voxels (``"ROI_VC = 1"`` in the paper).
    image_size_px : side length images are resized to (248 in the paper).
    cache_dir : where the uint8 image cache goes; default the data home's ``cache/images``
        (:func:`e2e_recon.data.home.image_cache_dir`), never the images folder.
    train_images : use only this many training images (whole images, chosen with ``seed``); 0 = all.
    val_images : hold out this many whole images as a validation :class:`TestSet` in ``.val``.
    seed : seed of the image choice for ``train_images`` / ``val_images``.
    drop_nonfinite : drop voxel columns holding NaN/inf instead of raising.

    Returns
    -------
    TrainingSet
    """
    raw, ids, kept, xyz = _read_training_voxels(fmri_path, roi, drop_nonfinite)
    train_ids, val_ids = _split_images(np.unique(ids), train_images, val_images, seed)
    train_rows = np.isin(ids, train_ids)
    voxels = _rows_as_float32(raw, np.flatnonzero(train_rows))  # (N, V)
    norm = _fit_norm(voxels, roi, kept, xyz)
    voxels -= norm.mean
    voxels /= norm.std

    all_ids = np.concatenate([train_ids, val_ids])  # training images first: slices stay memmaps
    images, names = _images_for(all_ids, images_dir, image_size_px, cache_dir)
    image_index = np.searchsorted(train_ids, ids[train_rows]).astype(np.int64)
    val = None
    if val_ids.size:
        val_rows = np.isin(ids, val_ids)
        avg, counts, _ = average_by_stimulus(raw[val_rows], ids[val_rows])
        val = TestSet(
            norm.apply(avg), counts, val_ids, names[train_ids.size :],
            images[train_ids.size :], "val",
        )  # fmt: skip
    return TrainingSet(
        voxels, image_index, images[: train_ids.size], train_ids, names[: train_ids.size], norm, val
    )


def load_test_set(
    fmri_path: PathLike,
    images_dir: PathLike | None,
    roi: str,
    norm: NormStats,
    image_size_px: int = 248,
    cache_dir: PathLike | None = None,
    set_name: str | None = None,
) -> TestSet:
    """Load a test BData file: presentations averaged per image, z-scored with ``norm``.

    Parameters
    ----------
    fmri_path : path to the test BData ``.h5``.
    images_dir : folder of the test images, or None to skip images.
    roi : selection expression; must give the same voxels as in training.
    norm : the training statistics (from the training set or a checkpoint).
    image_size_px, cache_dir : as in :func:`load_training_set`.
    set_name : defaults to the file header's ``set_name`` (imported sets), else "natural",
        "shapes" or "letters" from the lab's file name.

    Returns
    -------
    TestSet
        ``voxels`` are NOT scaled; multiply by ``sqrt(n_trials)[:, None]`` at test time.
    """
    bdata = BData(fmri_path)
    raw, xyz = _read_roi(bdata, roi)
    ids = stimulus_ids_of(bdata)
    named = str(bdata.header.get("set_name", "")) or None  # set by `e2e-recon import --set-name`
    if named is not None:  # it names output folders: never '..', '/' or markup
        safe_name(named, f"{fmri_path}: set_name in the header", hint=_RENAME_SET)
    del bdata
    raw, xyz = _columns_of(norm, raw, xyz, fmri_path, roi)
    if xyz is not None and norm.voxel_xyz is not None and not np.array_equal(xyz, norm.voxel_xyz):
        raise DataError(
            f"{fmri_path}: the voxels of {roi!r} sit at other coordinates (voxel_x/y/z) than "
            "in the training file. Use test and training files of the same subject and ROI."
        )
    _nonfinite_columns(raw, fmri_path, drop_allowed=False)
    avg, counts, unique = average_by_stimulus(raw, ids)
    images, names = None, [id_to_name(float(i)) for i in unique]
    if images_dir is not None:
        images, names = _images_for(unique, images_dir, image_size_px, cache_dir)
    return TestSet(
        norm.apply(avg),
        counts,
        unique,
        names,
        images,
        set_name or named or set_name_from_path(fmri_path),
    )


def _columns_of(
    norm: NormStats, raw: np.ndarray, xyz: np.ndarray | None, path: PathLike, roi: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """The ROI columns (n, V_roi) and coordinates a model's statistics keep, checked."""
    if norm.kept_columns is not None:
        if norm.kept_columns.size != raw.shape[1]:
            raise _mismatch(path, roi, raw.shape[1], norm.kept_columns.size)
        raw = raw[:, norm.kept_columns]
        xyz = xyz[norm.kept_columns] if xyz is not None else None
    if raw.shape[1] != norm.mean.size:
        raise _mismatch(path, roi, raw.shape[1], norm.mean.size)
    return raw, xyz


def _mismatch(path: PathLike, roi: str, got: int, expected: int) -> DataError:
    return DataError(
        f"{path}: selection {roi!r} gives {got} voxel columns, but the training data (or the "
        f"model's statistics) has {expected}. Test and training files must come from the same "
        "subject and use the same ROI."
    )
