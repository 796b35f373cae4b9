"""The ridge baseline against scikit-learn's RidgeCV, on data made here (not by ``sim/``).

The oracle is what a careful user would run: ``RidgeCV`` (efficient
leave-one-out, ``np.logspace(0, 7, 15)``) fitted to the same z-scored single
trials and pixels, applied to the same trial-averaged test patterns. The
project's decoder must identify the test images at least as well, within 0.01.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from e2e_recon.evaluate.metrics import pairwise_identification
from e2e_recon.recon.baselines import RidgeDecoder

sklearn_linear = pytest.importorskip("sklearn.linear_model", reason="scikit-learn is the oracle")

SIZE_PX = 12
TEST_TRIALS = 10


def _smooth_images(rng: np.random.Generator, n: int) -> np.ndarray:
    """Colour noise blurred to blobs, (n, S, S, 3) uint8."""
    raw = gaussian_filter(rng.normal(size=(n, SIZE_PX, SIZE_PX, 3)), sigma=(0, 2, 2, 0.5))
    return np.clip(128 + 50 * (raw - raw.mean()) / raw.std(), 0, 255).astype(np.uint8)


def _population_rf_subject(
    seed: int, n_train: int, repeats: int, noise: float, n_test: int = 20, n_voxels: int = 300
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian receptive fields over colour channels with a compressive nonlinearity.

    Returns z-scored single training trials (N, V), training images, the image
    row of each trial, z-scored test patterns averaged over TEST_TRIALS, test images.
    """
    rng = np.random.default_rng(seed)
    train_images, test_images = _smooth_images(rng, n_train), _smooth_images(rng, n_test)
    ys, xs = np.mgrid[0:SIZE_PX, 0:SIZE_PX]
    centre = rng.uniform(0, SIZE_PX, size=(n_voxels, 2))
    width = rng.uniform(1, 3, size=n_voxels)
    rf = np.exp(
        -((xs[None] - centre[:, 0, None, None]) ** 2 + (ys[None] - centre[:, 1, None, None]) ** 2)
        / (2 * width[:, None, None] ** 2)
    ).reshape(n_voxels, -1)  # (V, S*S)
    rf /= rf.sum(axis=1, keepdims=True)
    channel_weights = rng.normal(size=(n_voxels, 3))

    def respond(images: np.ndarray) -> np.ndarray:
        pixels = images.reshape(len(images), -1, 3) / 255.0 - 0.5  # (n, S*S, 3)
        drive = np.einsum("vp,npc,vc->nv", rf, pixels, channel_weights)
        return np.sign(drive) * np.abs(drive) ** 0.7  # (n, V)

    clean_train, clean_test = respond(train_images), respond(test_images)
    sd = noise * clean_train.std()
    groups = np.repeat(np.arange(n_train), repeats)
    train = clean_train[groups] + sd * rng.normal(size=(len(groups), n_voxels))
    test = (clean_test[:, None] + sd * rng.normal(size=(n_test, TEST_TRIALS, n_voxels))).mean(1)
    mean, std = train.mean(axis=0), train.std(axis=0)
    return (train - mean) / std, train_images, groups, (test - mean) / std, test_images


def _identification(pred: np.ndarray, true: np.ndarray) -> float:
    flat_true = true.reshape(len(true), -1).astype(np.float64)
    return float(pairwise_identification(pred.reshape(len(pred), -1), flat_true).mean())


def _compare(seed: int, n_train: int, repeats: int, noise: float) -> tuple[float, float]:
    x, images, groups, x_test, test_images = _population_rf_subject(seed, n_train, repeats, noise)
    oracle = sklearn_linear.RidgeCV(alphas=np.logspace(0, 7, 15))
    oracle.fit(x, images[groups].reshape(len(groups), -1).astype(np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a limit-of-search warning does not change the figure
        ours = RidgeDecoder(decode_px=SIZE_PX).fit(x, images, groups)
    return (
        _identification(ours.predict(x_test), test_images),
        _identification(oracle.predict(x_test), test_images),
    )


@pytest.mark.parametrize(("n_train", "repeats", "noise"), [(90, 1, 6.0), (200, 2, 6.0)])
def test_ridge_identifies_as_well_as_scikit_learn(n_train: int, repeats: int, noise: float) -> None:
    ours, oracle = _compare(0, n_train, repeats, noise)
    assert ours >= oracle - 0.01, (ours, oracle)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("n_train", "repeats", "noise"),
    [(90, 1, 3.0), (90, 1, 10.0), (200, 2, 10.0), (400, 2, 6.0), (800, 1, 6.0), (800, 1, 10.0)],
)
def test_ridge_identifies_as_well_as_scikit_learn_across_sizes_and_noise(
    n_train: int, repeats: int, noise: float
) -> None:
    ours, oracle = _compare(1, n_train, repeats, noise)
    assert ours >= oracle - 0.01, (ours, oracle)
