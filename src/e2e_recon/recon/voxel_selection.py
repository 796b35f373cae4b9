"""Voxel selection: keep the voxels the images predict (``data.voxel_selection``).

With a few hundred samples and thousands of voxels, voxels that carry no image
information still get weights in any decoder fitted to the samples (a ridge, or the
generator's first layer), and their noise reaches the reconstruction. The lab's
decoders select voxels for the same reason. Here each voxel is scored by how well the
images it was shown predict its response, from the training set alone:

1. the images: each training image's centre crop pooled to 16 x 16 x 3 pixels, and
   the 16 leading principal components of those pixel vectors;
2. each voxel's score: the leave-one-image-out R^2 of its image-mean response from
   those components (a small ridge; closed form through the hat matrix);
3. the voxels kept: the best-scoring fraction, ``data.voxel_fraction`` or, when it is 0,
   the fraction of :data:`FRACTIONS` that decodes held-out images best: five folds of
   whole images; in each, the scores from the other folds rank the voxels, and the
   ridge pixel decoder the runs are compared with (:class:`RidgeDecoder`, its penalty
   chosen by its own cross-validation) is fitted on the kept voxels of those folds'
   samples and decodes the held-out images' mean patterns; the held-out decodings of
   all folds are scored together by pairwise pixel identification, and a fraction below
   1 is kept only where it decodes above chance and beats all voxels by more than one
   standard error of the paired difference over images.

The kept voxels are recorded in the run's statistics (``NormStats.kept_columns``), so
test patterns, the fair ridge and a reconstruction from the saved generator all read
the same voxels.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from e2e_recon.data.dataset import NormStats, average_by_stimulus
from e2e_recon.errors import ConfigError
from e2e_recon.evaluate.metrics import pairwise_identification, resize_images
from e2e_recon.recon.baselines import RidgeDecoder

SELECTIONS = ("all", "image-r2")
#: Leading principal components of the images' pixels a voxel is predicted from.
SCORE_COMPONENTS = 16
#: Side of the pooled centre crop the components and the cross-validation use.
POOLED_PX = 16
#: Fractions of the voxels the cross-validation chooses among (1.0: keep all).
FRACTIONS = (0.06, 0.12, 0.25, 0.5, 1.0)
FOLDS = 5
#: Side of the images the cross-validated ridge decodes (its default, 64, costs 4x more).
DECODE_PX = 32
#: Pairwise identification of a decoder that knows nothing.
CHANCE = 0.5
#: Fewest voxels kept whatever the fraction.
MIN_VOXELS = 20
#: Fewest training images to score voxels on (two per fold); with fewer, all are kept.
MIN_IMAGES = 2 * FOLDS


def check_selection(selection: str, fraction: float) -> None:
    """Refuse a ``data.voxel_selection`` or ``data.voxel_fraction`` that cannot run."""
    if selection not in SELECTIONS:
        raise ConfigError(
            f"data.voxel_selection={selection!r}; use all (every voxel of the ROI) or image-r2 "
            "(the voxels the images predict best)"
        )
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(
            f"data.voxel_fraction={fraction}; use a fraction of the voxels up to 1, or 0 to "
            "choose it by cross-validation"
        )


def centre_crops(images: np.ndarray, crop_px: int) -> np.ndarray:
    """The centre ``crop_px`` square of each image (M, S, S, C) uint8."""
    top = max(0, (images.shape[1] - crop_px) // 2)
    return np.ascontiguousarray(images[:, top : top + crop_px, top : top + crop_px])


def pooled_pixels(crops: np.ndarray) -> np.ndarray:
    """Images (M, c, c, C) average-pooled to 16 x 16: (M, 16 * 16 * C) float64."""
    chw = torch.from_numpy(np.asarray(crops, dtype=np.float32)).permute(0, 3, 1, 2)
    pooled = F.adaptive_avg_pool2d(chw, min(POOLED_PX, crops.shape[1]))
    return pooled.reshape(len(crops), -1).double().numpy()


def voxel_scores(means: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Leave-one-image-out R^2 of each voxel from the images' leading pixel components.

    Parameters
    ----------
    means : ndarray, shape (m, V)
        Each image's mean pattern.
    pixels : ndarray, shape (m, P)
        The same images' pooled pixels.

    Returns
    -------
    ndarray, shape (V,)
    """
    centred = pixels - pixels.mean(axis=0)
    k = min(SCORE_COMPONENTS, len(means) - 2)
    _, _, rows = np.linalg.svd(centred, full_matrices=False)
    design = np.hstack([centred @ rows[:k].T, np.ones((len(means), 1))])  # (m, k + 1)
    penalty = 1e-3 * float(np.trace(design[:, :k].T @ design[:, :k])) / k
    gram = design.T @ design + penalty * np.diag([1.0] * k + [0.0])
    hat = design @ np.linalg.solve(gram, design.T)  # (m, m)
    held_out = (means - hat @ means) / (1.0 - np.diag(hat))[:, None]  # LOO residuals
    total = ((means - means.mean(axis=0)) ** 2).sum(axis=0)
    return 1.0 - (held_out**2).sum(axis=0) / np.maximum(total, 1e-12)


def kept_count(fraction: float, n_voxels: int) -> int:
    """Voxels kept for a fraction (at least :data:`MIN_VOXELS`, at most all)."""
    return min(n_voxels, max(MIN_VOXELS, round(fraction * n_voxels)))


def cross_validated_fraction(
    voxels: np.ndarray, image_index: np.ndarray, crops: np.ndarray, pixels: np.ndarray, seed: int
) -> tuple[float, dict[float, float]]:
    """The fraction of :data:`FRACTIONS` whose kept voxels decode held-out images best
    (1: all, unless a fraction beats it by more than a standard error).

    Parameters
    ----------
    voxels : ndarray, shape (N, V)
        The training samples.
    image_index : ndarray, shape (N,)
        Each sample's row of ``crops``.
    crops : ndarray, shape (M, c, c, 3)
        The training images' centre crops.
    pixels : ndarray, shape (M, P)
        Their pooled pixels (the voxels' scores are computed from them).
    seed : int
        Seed of the fold assignment.

    Returns
    -------
    The fraction and each fraction's mean held-out pixel identification.
    """
    shown = np.unique(image_index)
    fold_of = np.full(len(crops), -1)
    fold_of[shown] = np.random.default_rng(seed).permutation(len(shown)) % FOLDS
    size = min(DECODE_PX, crops.shape[1])
    decoded = {f: np.zeros((len(crops), size, size, crops.shape[3]), np.float32) for f in FRACTIONS}
    for fold in range(FOLDS):
        rows = ((fold_of != fold) & (fold_of >= 0))[image_index]  # the other folds' samples
        means, _, images = average_by_stimulus(voxels[rows], image_index[rows])
        order = np.argsort(-voxel_scores(means, pixels[images]))
        test_means, _, test_images = average_by_stimulus(voxels[~rows], image_index[~rows])
        groups = np.searchsorted(images, image_index[rows])  # rows of crops[images]
        for fraction in FRACTIONS:
            kept = order[: kept_count(fraction, voxels.shape[1])]
            decoder = RidgeDecoder(decode_px=size).fit(voxels[rows][:, kept], crops[images], groups)
            decoded[fraction][test_images] = decoder.predict(test_means[:, kept], size_px=size)
    # Scored once over every held-out image: identification among a fold's few images is coarse.
    actual = resize_images(crops[shown], size)  # (m, s, s, C)
    per_image = {f: pairwise_identification(decoded[f][shown], actual) for f in FRACTIONS}
    scores = {f: float(per_image[f].mean()) for f in FRACTIONS}
    best = max(FRACTIONS, key=lambda f: (scores[f], f))
    # Keep every voxel unless the best fraction decodes above chance and better by more
    # than one standard error of the paired difference: with few images the scores are
    # close to noise.
    gain = per_image[best] - per_image[1.0]  # (m,)
    standard_error = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else 0.0
    better = scores[best] > CHANCE and gain.mean() > standard_error
    return (best if better else 1.0), scores


def selected_norm(norm: NormStats, keep: np.ndarray) -> NormStats:
    """``norm`` restricted to the columns ``keep`` (V,) bool; ``kept_columns`` stays a
    mask over the ROI's columns (composed with a non-finite drop, if any)."""
    if norm.kept_columns is None:
        columns = keep.copy()
    else:
        columns = norm.kept_columns.copy()
        columns[np.flatnonzero(columns)[~keep]] = False
    xyz = norm.voxel_xyz[keep] if norm.voxel_xyz is not None else None
    return replace(norm, mean=norm.mean[keep], std=norm.std[keep], kept_columns=columns,
                   voxel_xyz=xyz)  # fmt: skip


def select_voxels(training: Any, crop_px: int, fraction: float, seed: int) -> tuple[Any, str]:
    """Keep the voxels the images predict best; return the training set and a log line.

    Parameters
    ----------
    training : TrainingSet
        Z-scored voxels and their images.
    crop_px : int
        The centre crop the images are scored on (the generator's).
    fraction : float
        Fraction of the voxels kept; 0: chosen by cross-validation.
    seed : int
        Seed of the cross-validation folds.
    """
    # float32 as stored: the per-image means sum in float64 and the ridge fits in float32,
    # so a float64 copy of every sample (hundreds of MB on the lab's data) buys nothing.
    voxels = np.asarray(training.voxels)  # (N, V)
    index = np.asarray(training.image_index)  # (N,)
    crops = centre_crops(np.asarray(training.images), crop_px)  # (M, c, c, 3)
    pixels = pooled_pixels(crops)  # (M, P)
    means, _, shown = average_by_stimulus(voxels, index)  # (m, V), images shown
    n_voxels = means.shape[1]
    if len(shown) < MIN_IMAGES:
        return training, (
            f"voxel selection: all {n_voxels} voxels kept: {len(shown)} training images are too "
            f"few to score them (at least {MIN_IMAGES})"
        )
    how = f"fraction {fraction:g}"
    if fraction == 0:
        fraction, scores = cross_validated_fraction(voxels, index, crops, pixels, seed)
        listed = ", ".join(f"{f:g}: {s:.3f}" for f, s in scores.items())
        how = f"fraction {fraction:g} by cross-validation (held-out identification {listed})"
    order = np.argsort(-voxel_scores(means, pixels[shown]))
    keep = np.zeros(n_voxels, dtype=bool)
    keep[order[: kept_count(fraction, n_voxels)]] = True
    val = training.val
    if val is not None:
        val = replace(val, voxels=np.ascontiguousarray(val.voxels[:, keep]))
    selected = replace(training, voxels=np.ascontiguousarray(training.voxels[:, keep]),
                       norm=selected_norm(training.norm, keep), val=val)  # fmt: skip
    return selected, f"voxel selection: {int(keep.sum())} of {n_voxels} voxels kept, {how}"
