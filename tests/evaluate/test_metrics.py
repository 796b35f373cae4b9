"""Tests of the NumPy metrics, against bdpy where it is installed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from e2e_recon.errors import DataError
from e2e_recon.evaluate.metrics import (
    CHANCE_IDENTIFICATION,
    bootstrap_ci,
    feature_identification,
    pairwise_identification,
    pixcorr,
    resize_images,
    ssim_scores,
)


def _bdpy_identification(*args: object, **kwargs: object) -> np.ndarray:
    metrics = pytest.importorskip("bdpy.evals.metrics", reason="bdpy (test oracle) not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(metrics.pairwise_identification(*args, **kwargs))


@pytest.mark.bdpy
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("metric", ["correlation", "euclidean", "cosine"])
def test_pairwise_identification_equals_bdpy_on_random_data(seed: int, metric: str) -> None:
    rng = np.random.default_rng(seed)
    true = rng.normal(size=(12, 7, 5))
    pred = true + rng.normal(scale=2.0, size=true.shape)
    expected = _bdpy_identification(pred, true, metric=metric)
    np.testing.assert_array_equal(pairwise_identification(pred, true, metric=metric), expected)


@pytest.mark.bdpy
def test_pairwise_identification_equals_bdpy_with_ties_and_nans() -> None:
    rng = np.random.default_rng(3)
    true = rng.normal(size=(8, 30))
    true[5] = true[2]  # duplicate candidate: exact ties, which count as failures
    pred = true + rng.normal(scale=0.5, size=true.shape)
    pred[1] = 4.0  # constant row: its correlations are NaN, score 0
    pred[3, 7] = np.nan  # NaN column, removed
    true[6, 2] = np.nan
    with pytest.warns(UserWarning, match="NaN"):
        ours = pairwise_identification(pred, true)
    np.testing.assert_array_equal(ours, _bdpy_identification(pred, true))
    assert ours[1] == 0.0
    for flag in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = pairwise_identification(pred, true, remove_nan_dist=flag)
        np.testing.assert_array_equal(ours, _bdpy_identification(pred, true, remove_nan_dist=flag))


@pytest.mark.bdpy
def test_single_trial_identification_equals_bdpy() -> None:
    rng = np.random.default_rng(4)
    true = rng.normal(size=(5, 20))
    true_labels = np.array([10.5, 11.5, 12.5, 13.5, 14.5])
    pred_labels = np.repeat(true_labels, 3)
    pred = true[np.repeat(np.arange(5), 3)] + rng.normal(scale=1.5, size=(15, 20))
    kwargs = {"single_trial": True, "pred_labels": pred_labels, "true_labels": true_labels}
    np.testing.assert_array_equal(
        pairwise_identification(pred, true, **kwargs), _bdpy_identification(pred, true, **kwargs)
    )


def test_pairwise_identification_perfect_and_ties() -> None:
    true = np.eye(4) + 0.1
    assert np.all(pairwise_identification(true, true) == 1.0)
    same = np.tile(np.arange(6.0), (3, 1))  # every candidate identical: all ties
    assert np.all(pairwise_identification(same + 1, same) == 0.0)


def test_identification_with_fewer_than_two_images_is_undefined() -> None:
    with pytest.raises(DataError, match="undefined for fewer than 2 images"):
        pairwise_identification(np.ones((1, 5)), np.ones((1, 5)))
    with pytest.raises(DataError, match="undefined"):
        feature_identification(np.ones((1, 3, 2, 2)), np.ones((1, 3, 2, 2)))


def test_pairwise_identification_rejects_mismatched_shapes() -> None:
    with pytest.raises(DataError, match="shape"):
        pairwise_identification(np.ones((3, 5)), np.ones((4, 5)))


def test_feature_identification_flattens_feature_maps() -> None:
    rng = np.random.default_rng(5)
    true = rng.normal(size=(6, 4, 3, 3))
    acc = feature_identification(true + 0.01 * rng.normal(size=true.shape), true)
    assert acc.shape == (6,)
    assert np.all(acc == 1.0)
    assert CHANCE_IDENTIFICATION == 0.5


def test_pixcorr_matches_numpy_corrcoef() -> None:
    rng = np.random.default_rng(6)
    pred, true = rng.random((3, 8, 8, 3)), rng.random((3, 8, 8, 3))
    expected = [np.corrcoef(p.ravel(), t.ravel())[0, 1] for p, t in zip(pred, true, strict=True)]
    np.testing.assert_allclose(pixcorr(pred, true), expected, rtol=1e-12)


def test_ssim_is_one_for_identical_images_and_lower_for_noise() -> None:
    rng = np.random.default_rng(7)
    true = rng.random((2, 16, 16, 3)) * 255
    assert np.allclose(ssim_scores(true, true), 1.0)
    noisy = np.clip(true + rng.normal(scale=60, size=true.shape), 0, 255)
    assert np.all(ssim_scores(noisy, true) < 0.9)
    assert ssim_scores(noisy, true, greyscale=False).shape == (2,)
    with pytest.raises(DataError, match=r"\(N, H, W, 3\)"):
        ssim_scores(true[..., 0], true[..., 0])


def test_bootstrap_ci_is_reproducible_and_brackets_the_mean() -> None:
    values = np.random.default_rng(8).random(40)
    low, high = bootstrap_ci(values, n_boot=500, seed=1)
    assert low < values.mean() < high
    assert (low, high) == bootstrap_ci(values, n_boot=500, seed=1)
    assert bootstrap_ci(np.full(5, 0.7)) == pytest.approx((0.7, 0.7))
    assert np.isnan(bootstrap_ci(np.array([np.nan]))[0])
    with pytest.raises(DataError, match="ci"):
        bootstrap_ci(values, ci=1.5)


def test_resize_images_keeps_constant_images_constant() -> None:
    images = np.full((2, 20, 20, 3), 100.0)
    small = resize_images(images, 8)
    assert small.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(small, 100.0, rtol=1e-5)
    assert resize_images(small, 30).shape == (2, 30, 30, 3)
