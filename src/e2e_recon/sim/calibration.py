"""Calibration figures of a simulated subject: noise ceilings, reliabilities, ridge decoding.

These are the numbers a neuroscientist checks first on real data; the simulator
reports them so that its default SNR can be judged against real recordings.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from e2e_recon.evaluate.metrics import pairwise_identification

__all__ = [
    "calibration_figures",
    "noise_ceiling",
    "ridge_identification",
    "split_half_reliability",
]

RELIABILITY_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _trial_means(values: np.ndarray, image_index: np.ndarray, n_images: int) -> np.ndarray:
    """Mean over the presentations of each image: (n_images, V) float64."""
    sums = np.zeros((n_images, values.shape[1]))
    np.add.at(sums, image_index, values)
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


def _pixels(images: np.ndarray, size_px: int) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, size_px * size_px * 3) float64 in [0, 1], anti-aliased."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-1] != size_px:
        x = F.interpolate(x, size=(size_px, size_px), mode="bilinear", antialias=True)
    return x.reshape(len(x), -1).double().numpy()


def _ridge_fit_predict(x, y, x_new_list, alphas):
    """Closed-form ridge for several alphas at once via the eigendecomposition of X X^T.

    Returns, per alpha, the list of predictions for each matrix in ``x_new_list``.
    """
    gram = x @ x.T  # (N, N); N (images) is smaller than V here
    eigval, eigvec = np.linalg.eigh(gram)
    eigval = np.maximum(eigval, 0.0)
    projected = eigvec.T @ y  # (N, D)
    out = []
    for alpha in alphas:
        dual = eigvec @ (projected / (eigval + alpha)[:, None])  # (N, D) dual coefficients
        out.append([(x_new @ x.T) @ dual for x_new in x_new_list])
    return out


def ridge_identification(
    train_values: np.ndarray,
    train_index: np.ndarray,
    train_images: np.ndarray,
    test_values: np.ndarray,
    test_index: np.ndarray,
    test_images: np.ndarray,
    pixels_px: int = 32,
    seed: int = 0,
) -> dict:
    """Pairwise identification of a ridge pixel decoder on the test set.

    Voxels are z-scored with the training-trial mean and SD; training and test
    presentations are averaged per image; the decoder maps voxels to the pixels of the
    image resized to ``pixels_px`` (RGB, 0-1). Alpha is chosen on 20% of the training
    images held out, then the decoder is refit on all training images.

    Returns
    -------
    dict
        ``pairwise_identification`` (mean over test images), ``alpha``, ``pixels_px``.
    """
    mean, sd = train_values.mean(axis=0), train_values.std(axis=0) + 1e-12
    n_train = len(train_images)
    x = (_trial_means(train_values, train_index, n_train) - mean) / sd
    x_test = (_trial_means(test_values, test_index, len(test_images)) - mean) / sd
    y = _pixels(train_images, pixels_px)
    y_test = _pixels(test_images, pixels_px)
    y_mean = y.mean(axis=0)
    scale = float(np.trace(x @ x.T)) / n_train  # alphas relative to the mean eigenvalue
    alphas = scale * np.logspace(-3, 2, 11)
    held_out = np.random.default_rng(seed).random(n_train) < 0.2
    fits = _ridge_fit_predict(x[~held_out], y[~held_out] - y_mean, [x[held_out]], alphas)
    scores = [pairwise_identification(pred[0] + y_mean, y[held_out]).mean() for pred in fits]
    best = float(alphas[int(np.argmax(scores))])
    pred_test = _ridge_fit_predict(x, y - y_mean, [x_test], [best])[0][0] + y_mean
    return {
        "pairwise_identification": float(pairwise_identification(pred_test, y_test).mean()),
        "alpha": best,
        "pixels_px": pixels_px,
    }


def calibration_figures(
    trials: dict[str, tuple[np.ndarray, np.ndarray]],
    images: dict[str, np.ndarray],
    masks: dict[str, np.ndarray],
    seed: int = 0,
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
    seed : int

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
        train_values,
        train_index,
        images["training"],
        test_values,
        test_index,
        images["test"],
        seed=seed,
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
