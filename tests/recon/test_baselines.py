"""Tests of the ridge pixel decoder on tiny random data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from e2e_recon.errors import DataError, ModelFormatError
from e2e_recon.recon import baselines
from e2e_recon.recon.baselines import RidgeDecoder, _CrossValidation


def _linear_problem(
    seed: int = 0,
    n_images: int = 12,
    repeats: int = 3,
    n_voxels: int = 40,
    size: int = 8,
    noise: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images made from a few latent factors; voxels = noisy linear view of the factors."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n_images, 4))
    basis = rng.normal(size=(4, size * size * 3))
    images = np.clip(128 + 20 * latent @ basis, 0, 255).reshape(n_images, size, size, 3)
    groups = np.repeat(np.arange(n_images), repeats)
    mixing = rng.normal(size=(4, n_voxels))
    voxels = latent[groups] @ mixing + noise * rng.normal(size=(len(groups), n_voxels))
    test_voxels = latent @ mixing  # noiseless "averaged" patterns
    return voxels.astype(np.float32), images.astype(np.uint8), groups, test_voxels


def test_averaged_pattern_errors_match_explicit_refits() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(6), [2, 3, 2, 1, 3, 2])  # unequal group sizes, one single
    x = rng.normal(size=(len(groups), 9))
    y = rng.normal(size=(len(groups), 4))
    xc = x - x.mean(axis=0)
    eigvals, eigvecs = np.linalg.eigh(xc @ xc.T)
    cv = _CrossValidation(np.clip(eigvals, 0, None), eigvecs, eigvecs.T @ y, groups)
    alphas = np.array([1e-6, 0.1, 1.0, 10.0])  # 1e-6: the closed form stays exact
    ours = cv.errors(alphas)
    for alpha, error in zip(alphas, ours, strict=True):
        expected = 0.0
        for g in np.unique(groups):
            train, test = groups != g, groups == g
            weights = np.linalg.solve(
                xc[train].T @ xc[train] + alpha * np.eye(9), xc[train].T @ y[train]
            )
            # the prediction from the image's averaged pattern, against its target
            expected += np.sum((y[test].mean(axis=0) - xc[test].mean(axis=0) @ weights) ** 2)
        assert error == pytest.approx(expected, rel=1e-3)


def test_alpha_grid_widens_instead_of_stopping_at_an_edge(monkeypatch) -> None:
    voxels, images, groups, _ = _linear_problem(noise=0.0)
    reference = RidgeDecoder(decode_px=8, n_components=None).fit(voxels, images, groups)
    # A starting grid far above the best alpha: it must widen downwards to find it.
    monkeypatch.setattr(baselines, "DEFAULT_RELATIVE_ALPHAS", (1e3, 1e4, 1e5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and without an "edge of the grid" warning
        decoder = RidgeDecoder(decode_px=8, n_components=None).fit(voxels, images, groups)
    assert decoder.alphas_[0] < decoder.alpha_ < decoder.alphas_[-1]
    assert decoder.alpha_ == pytest.approx(reference.alpha_, rel=2.0)


def test_an_alpha_at_the_top_of_the_search_warns_without_naming_options() -> None:
    class ErrorFallsWithAlpha:  # what voxels without information about the images give
        eigvals = np.ones(4)

        def errors(self, alphas: np.ndarray) -> np.ndarray:
            return 1.0 / alphas

    with pytest.warns(UserWarning, match="top of the search") as caught:
        alphas, errors = RidgeDecoder()._search_alphas(ErrorFallsWithAlpha())  # type: ignore[arg-type]
    assert alphas[-1] == pytest.approx(baselines.RELATIVE_ALPHA_LIMITS[1], rel=0.5)
    assert np.argmin(errors) == len(alphas) - 1
    assert "alphas grid" not in str(caught[0].message)


def test_fit_predict_decodes_better_than_the_mean_image() -> None:
    voxels, images, groups, test_voxels = _linear_problem()
    decoder = RidgeDecoder(decode_px=8, n_components=None).fit(voxels, images, groups)
    assert decoder.alphas_[0] <= decoder.alpha_ <= decoder.alphas_[-1]
    assert decoder.cv_errors_.shape == decoder.alphas_.shape
    decoded = decoder.predict(test_voxels)
    assert decoded.shape == (12, 8, 8, 3)
    error = np.mean((decoded - images) ** 2)
    baseline = np.mean((images.mean(axis=0) - images.astype(float)) ** 2)
    assert error < 0.3 * baseline
    assert decoder.predict(test_voxels[:2], size_px=20).shape == (2, 20, 20, 3)


def test_all_components_equal_plain_pixel_ridge() -> None:
    voxels, images, groups, _ = _linear_problem(seed=2)
    decoder = RidgeDecoder(decode_px=8, n_components=None, alphas=[3.0]).fit(voxels, images, groups)
    x = voxels.astype(np.float64)
    xc = x - x.mean(axis=0)
    y = images[groups].reshape(len(groups), -1).astype(np.float64)
    w = np.linalg.solve(xc.T @ xc + 3.0 * np.eye(x.shape[1]), xc.T @ (y - y.mean(axis=0)))
    expected = (y.mean(axis=0) + (x[:5] - x.mean(axis=0)) @ w).reshape(5, 8, 8, 3)
    np.testing.assert_allclose(decoder.predict(voxels[:5]), expected, atol=1e-2)


def test_decodes_at_reduced_resolution_and_upsamples() -> None:
    voxels, images, groups, test_voxels = _linear_problem(size=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny problem may pick an edge alpha
        decoder = RidgeDecoder(decode_px=4, n_components=5).fit(voxels, images, groups)
    assert decoder.components_.shape == (5, 4 * 4 * 3)
    assert decoder.predict(test_voxels).shape == (12, 16, 16, 3)


def test_save_load_round_trip(tmp_path) -> None:
    voxels, images, groups, test_voxels = _linear_problem()
    decoder = RidgeDecoder(decode_px=8).fit(voxels, images, groups)
    path = decoder.save(tmp_path / "ridge.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["ridge.npz"]  # no temporary left behind
    loaded = RidgeDecoder.load(path)
    assert loaded.alpha_ == decoder.alpha_
    np.testing.assert_array_equal(loaded.predict(test_voxels), decoder.predict(test_voxels))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelFormatError, match=r"bad\.npz"):
        RidgeDecoder.load(tmp_path / "bad.npz")


def test_bad_input_is_refused() -> None:
    voxels, images, groups, _ = _linear_problem()
    with pytest.raises(DataError, match="groups"):
        RidgeDecoder().fit(voxels, images, groups + 100)
    with pytest.raises(DataError, match="at least 2 images"):
        RidgeDecoder().fit(voxels, images, np.zeros_like(groups))
    with pytest.raises(DataError, match="not fitted"):
        RidgeDecoder().predict(voxels)
    decoder = RidgeDecoder(decode_px=8).fit(voxels, images, groups)
    with pytest.raises(DataError, match=r"\(B, 40\)"):
        decoder.predict(voxels[:, :10])
