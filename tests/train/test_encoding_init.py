"""The encoding-model start of an adapted input layer: the per-voxel fit and its inverse."""

from __future__ import annotations

import numpy as np

from e2e_recon.train.encoding_init import posterior_mean_map, voxel_model


def _forward_model(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Codes with unequal variances and 40 voxels driven by them with unequal noise."""
    rng = np.random.default_rng(seed)
    prior_var = np.array([4.0, 1.0, 0.25])
    loadings = rng.normal(size=(3, 40))  # (k, V)
    noise = rng.uniform(0.5, 2.0, size=40)  # (V,)
    codes = rng.normal(size=(n, 3)) * np.sqrt(prior_var)  # (n, k)
    offset = rng.normal(size=40)
    voxels = codes @ loadings + offset + rng.normal(size=(n, 40)) * np.sqrt(noise)
    return {"prior_var": prior_var, "loadings": loadings, "noise": noise, "codes": codes,
            "offset": offset, "voxels": voxels}  # fmt: skip


def test_voxel_model_recovers_loadings_offset_and_noise() -> None:
    truth = _forward_model(4000)
    loadings, offset, noise = voxel_model(truth["codes"], truth["voxels"])
    assert np.abs(loadings - truth["loadings"]).max() < 0.15
    assert np.abs(offset - truth["offset"]).max() < 0.1
    assert np.abs(noise / truth["noise"] - 1).max() < 0.15


def test_posterior_mean_map_equals_the_covariance_form() -> None:
    truth = _forward_model(10)
    a, d, lam = truth["loadings"], truth["noise"], truth["prior_var"]
    # Independent form of the same posterior mean: Sigma A (A' Sigma A + D)^-1 (V x V solve).
    covariance_form = np.diag(lam) @ a @ np.linalg.inv(a.T @ np.diag(lam) @ a + np.diag(d))
    np.testing.assert_allclose(posterior_mean_map(lam, a, d), covariance_form, atol=1e-10)


def test_the_inverse_decodes_new_patterns_better_than_least_squares() -> None:
    """With noisy voxels, the posterior mean beats the unregularised inverse (pinv)."""
    truth = _forward_model(10, seed=1)
    rng = np.random.default_rng(5)
    codes = rng.normal(size=(500, 3)) * np.sqrt(truth["prior_var"])
    voxels = codes @ truth["loadings"] + rng.normal(size=(500, 40)) * 3 * np.sqrt(truth["noise"])
    posterior = voxels @ posterior_mean_map(truth["prior_var"], truth["loadings"],
                                            9 * truth["noise"]).T  # fmt: skip
    least_squares = voxels @ np.linalg.pinv(truth["loadings"])
    error = np.mean((posterior - codes) ** 2)
    assert error < 0.9 * np.mean((least_squares - codes) ** 2)
    assert error < np.mean(codes**2)  # better than guessing the prior mean
