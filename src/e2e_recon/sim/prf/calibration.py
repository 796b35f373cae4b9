"""Calibration figures of the pRF simulator family: a ridge pixel decoder's pairwise
identification and the truth-based noise ceiling (its own code, not the project's)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import zoom

from e2e_recon.sim.prf.brain import Brain

__all__ = ["calibrate", "noise_ceiling", "pairwise_identification", "ridge_identification"]


def ridge_identification(
    x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, groups: np.ndarray
) -> tuple[float, float]:
    """Ridge pixel decoder, alpha chosen on 10% held-out images: (identification, alpha).

    ``x`` (N, V) z-scored trials, ``y`` (N, D) targets, ``groups`` (N,) image of each trial.
    """
    held = np.isin(groups, np.unique(groups)[::10])
    alphas = np.logspace(0, 7, 15)

    def fit_predict(train: np.ndarray, target: np.ndarray, apply: np.ndarray) -> np.ndarray:
        # Through the N x N kernel: far cheaper than an SVD of (N, V) when V > N.
        mean = target.mean(axis=0)
        eigval, u = np.linalg.eigh(train @ train.T)  # (k,), (N, k)
        s2 = np.maximum(eigval, 0.0)
        projected = apply @ train.T @ u  # (n_apply, k) = apply @ V diag(s)
        ut_y = u.T @ (target - mean)  # (k, D)
        return np.stack([projected @ ((1 / (s2 + a))[:, None] * ut_y) + mean for a in alphas])

    preds = fit_predict(x[~held], y[~held], x[held])
    errors = ((preds - y[held][None]) ** 2).mean(axis=(1, 2))
    best = int(np.argmin(errors))
    pred = fit_predict(x, y, x_test)[best]
    return pairwise_identification(pred, y_test), float(alphas[best])


def pairwise_identification(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean share of wrong candidates whose correlation with a prediction is lower."""

    def z(a: np.ndarray) -> np.ndarray:
        a = a - a.mean(axis=1, keepdims=True)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    corr = z(pred) @ z(true).T  # (M, M): prediction i against image j
    right = np.diag(corr)[:, None]
    wins = (corr < right).sum(axis=1) / (len(corr) - 1)
    return float(wins.mean())


def targets(images: np.ndarray, grey: bool, size: int = 32) -> np.ndarray:
    """Images as ridge targets: at most ``size`` px, grey for the digits; (n, D)."""
    if images.shape[1] > size:
        images = zoom(images, (1, size / images.shape[1], size / images.shape[1], 1), order=1)
    return (images.mean(axis=3) if grey else images).reshape(len(images), -1)


def noise_ceiling(brain: Brain, spec: dict[str, Any]) -> float:
    """Median over VC voxels of the explainable variance (%) of a test mean, from the truth.

    A voxel's signal has variance ``gain**2`` and its noise ``1 / snr**2``, so a mean of
    n trials keeps ``100 g^2 / (g^2 + 1 / (n snr^2))`` percent (Allen et al. 2022's definition).
    """
    g2 = brain.gain[brain.area >= 0] ** 2
    noise = 1.0 / (spec["test_presentations"] * spec["snr"] ** 2)
    return round(float(np.median(100 * g2 / (g2 + noise))), 2)


def calibrate(arrays: dict, sets: dict, brain: Brain, grey: bool) -> tuple[float, float]:
    """Ridge pixel identification on the test set (VC voxels, test trials averaged)."""
    vc = brain.area >= 0
    values, order, _ = arrays["training"]
    mean, sd = values[:, vc].mean(axis=0), values[:, vc].std(axis=0)
    x = (values[:, vc] - mean) / sd
    y = targets(sets["training"]["images"], grey)[order]
    test_values, test_order, _ = arrays["test"]
    avg = np.zeros((sets["test"]["ids"].size, int(vc.sum())))
    np.add.at(avg, test_order, test_values[:, vc])
    avg /= np.bincount(test_order)[:, None]
    score, alpha = ridge_identification(
        x, y, (avg - mean) / sd, targets(sets["test"]["images"], grey), order
    )
    return round(score, 4), alpha
