"""Calibration figures of a simulated subject: noise ceilings, reliabilities, ridge decoding.

These are the numbers a neuroscientist checks first on real data; the simulator
reports them so that its default SNR can be judged against real recordings.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.sparse import csr_matrix

from e2e_recon.evaluate.metrics import pairwise_identification, resize_images
from e2e_recon.recon.baselines import RidgeDecoder

__all__ = [
    "calibration_figures",
    "noise_ceiling",
    "ridge_identification",
    "split_half_reliability",
]

RELIABILITY_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _trial_means(values: np.ndarray, image_index: np.ndarray, n_images: int) -> np.ndarray:
    """Mean over the presentations of each image: (n_images, V) float64."""
    # A sparse indicator product instead of np.add.at, which is slow on large arrays.
    ones = np.ones(len(image_index))
    indicator = csr_matrix(
        (ones, (image_index, np.arange(len(image_index)))), (n_images, len(ones))
    )
    sums = np.asarray(indicator @ values, dtype=np.float64)
    return sums / np.bincount(image_index, minlength=n_images)[:, None]


def noise_ceiling(values: np.ndarray, image_index: np.ndarray, n_average: int) -> np.ndarray:
    """Noise ceiling (percent explainable variance) of trial-averaged responses.

    Follows Allen et al. (2022): after z-scoring each voxel over trials, the noise
    variance is the mean within-image variance (ddof 1), ``ncsnr = sqrt(max(1 - s2, 0)) /
    sqrt(s2)`` and ``NC = 100 * ncsnr**2 / (ncsnr**2 + 1 / n_average)``.

    Parameters
    ----------
    values : ndarray, shape (T, V)
    image_index : ndarray, shape (T,) int
    n_average : int
        Number of trials averaged per image in the data the ceiling is for.

    Returns
    -------
    ndarray, shape (V,), percent
    """
    z = (values - values.mean(axis=0)) / (values.std(axis=0) + 1e-12)
    n_images = int(image_index.max()) + 1
    means = _trial_means(z, image_index, n_images)
    residual = z - means[image_index]
    within = (residual**2).sum(axis=0) / (len(z) - n_images)  # pooled ddof-1 variance
    ncsnr2 = np.maximum(1.0 - within, 0.0) / np.maximum(within, 1e-12)
    return 100.0 * ncsnr2 / (ncsnr2 + 1.0 / n_average)


def split_half_reliability(values: np.ndarray, image_index: np.ndarray) -> np.ndarray:
    """Pearson r over images between the means of the first and the second half of each
    image's presentations (in time order): (V,). Needs >= 2 presentations per image."""
    n_images = int(image_index.max()) + 1
    occurrence = np.zeros(len(image_index), dtype=int)
    seen = np.zeros(n_images, dtype=int)
    for t, i in enumerate(image_index):
        occurrence[t] = seen[i]
        seen[i] += 1
    first = occurrence < (seen[image_index] + 1) // 2
    a = _trial_means(values[first], image_index[first], n_images)
    b = _trial_means(values[~first], image_index[~first], n_images)
    a = (a - a.mean(axis=0)) / (a.std(axis=0) + 1e-12)
    b = (b - b.mean(axis=0)) / (b.std(axis=0) + 1e-12)
    return (a * b).mean(axis=0)


def ridge_identification(
    train_values: np.ndarray,
    train_index: np.ndarray,
    train_images: np.ndarray,
    test_values: np.ndarray,
    test_index: np.ndarray,
    test_images: np.ndarray,
    pixels_px: int = 64,
) -> dict:
    """Pairwise identification of the project's ridge pixel decoder on the test set.

    Close to the reconstruction pipeline's baseline: voxels are z-scored with the training-trial
    mean and SD, :class:`~e2e_recon.recon.baselines.RidgeDecoder` is fitted on the
    trial-averaged training patterns (one per image: the Gram matrix stays small;
    alpha by leave-one-image-out cross-validation), applied to the trial-averaged
    test patterns, and scored by pixel correlation
    (:func:`~e2e_recon.evaluate.metrics.pairwise_identification`) at ``pixels_px``
    (at most the image size).

    Returns
    -------
    dict
        ``pairwise_identification`` (mean over test images), ``alpha``, ``pixels_px``.
    """
    size = min(pixels_px, train_images.shape[1])
    mean, sd = train_values.mean(axis=0), train_values.std(axis=0) + 1e-12
    train_means = _trial_means(train_values, train_index, len(train_images))
    x = ((train_means - mean) / sd).astype(np.float32)  # (M_train, V)
    test_means = _trial_means(test_values, test_index, len(test_images))
    x_test = ((test_means - mean) / sd).astype(np.float32)  # (M, V)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an alpha at the grid's edge is fine for a figure
        decoder = RidgeDecoder(decode_px=size).fit(x, train_images, np.arange(len(x)))
    pred = decoder.predict(x_test, size_px=size).reshape(len(x_test), -1)
    true = resize_images(test_images.astype(np.float32), size).reshape(len(x_test), -1)
    return {
        "pairwise_identification": float(pairwise_identification(pred, true).mean()),
        "alpha": float(decoder.alpha_),
        "pixels_px": size,
    }


def calibration_figures(
    trials: dict[str, tuple[np.ndarray, np.ndarray]],
    images: dict[str, np.ndarray],
    masks: dict[str, np.ndarray],
) -> dict:
    """Noise ceilings, reliabilities and the ridge decoder's identification accuracy.

    Parameters
    ----------
    trials : dict
        ``"training"`` and ``"test"`` -> (values (T, V), image_index (T,)).
    images : dict
        ``"training"`` and ``"test"`` -> images (M, S, S, 3) uint8.
    masks : dict
        ROI name -> (V,) bool.

    Returns
    -------
    dict
        ``noise_ceiling_median_pct`` (per ROI, natural test set, for the mean of all its
        presentations), ``noise_ceiling_n_average``, ``reliability_median`` (per ROI,
        split-half r on the training set), ``reliability_quantiles`` (VC) and ``ridge``.
    """
    train_values, train_index = trials["training"]
    test_values, test_index = trials["test"]
    n_average = len(test_index) // (int(test_index.max()) + 1)
    ceiling = noise_ceiling(test_values, test_index, n_average)
    reliability = split_half_reliability(train_values, train_index)
    ridge = ridge_identification(
        train_values, train_index, images["training"], test_values, test_index, images["test"]
    )
    return {
        "noise_ceiling_median_pct": {
            roi: round(float(np.median(ceiling[m])), 2) for roi, m in masks.items()
        },
        "noise_ceiling_n_average": n_average,
        "reliability_median": {
            roi: round(float(np.median(reliability[m])), 3) for roi, m in masks.items()
        },
        "reliability_quantiles": {
            f"{round(100 * q)}%": round(float(np.quantile(reliability, q)), 3)
            for q in RELIABILITY_QUANTILES
        },
        "ridge": ridge,
    }
