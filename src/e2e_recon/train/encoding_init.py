"""The ``encoding`` start of an adapted input layer: a forward model of the new subject's
voxels, inverted (``train.adapt_init=encoding``).

The ``activations`` start fits the new subject's voxels -> the shared code directly (a
ridge decoder): with a few hundred samples and thousands of voxels, such a decoder only
sees a test pattern through its projection on the training patterns. Here the fit runs the
other way, as encoding models do: each voxel is predicted from a low-dimensional summary of
the shared code (``k`` parameters per voxel, well determined by a few hundred samples), and
the input layer is that model's inverse, the posterior mean of the code given the voxels:

1. the shared code of every image the source subjects saw (their input layers' mean
   output, :func:`~e2e_recon.train.adapt.source_activations`); its ``k`` leading principal
   components ``P`` and their variances ``lam`` (the prior of the code, learned from every
   source image, not only the new subject's);
2. per voxel, least squares from the components ``c = P (z - mu)`` of the new subject's
   training images to its responses: ``v = A' c + b + noise``, the noise variance ``d``
   from the residuals;
3. the input layer ``W = P' (diag(1/lam) + A diag(1/d) A')^-1 A diag(1/d)``, bias
   ``mu - W b``: the Gaussian posterior mean of ``z`` given one pattern ``v``.

Measured in ``docs/several-subjects.md`` ("An encoding-model start").
"""

from __future__ import annotations

import numpy as np
import torch

#: Principal components of the shared code kept (measured before training, 300 samples:
#: 128 decoded best, 0.763 pixel identification against 0.752 with 64 and 0.744 with 256;
#: with 1,440 samples within 0.004 of 256 and 512).
ENCODING_DIMS = 128
#: Ridge penalty of the per-voxel fit, relative to the mean component variance x samples:
#: a small one (the inversion weighs each voxel by its own noise; 0.1 and 1 decoded worse).
ENCODING_ALPHA = 1.0e-3


def encoding_fit(
    x: np.ndarray, y: np.ndarray, targets: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Fit the forward model on the new subject's samples and invert it.

    Parameters
    ----------
    x : ndarray, shape (n, V)
        The new subject's training samples (z-scored voxels) of images the sources saw.
    y : ndarray, shape (n, F)
        The shared code of each sample's image.
    targets : ndarray, shape (M, F)
        The shared code of every image the source subjects saw (the code's prior).

    Returns
    -------
    weight : Tensor, shape (F, V)
    bias : Tensor, shape (F,)
    note : str
        One line for the run's log.
    """
    k = min(ENCODING_DIMS, len(targets) - 1, targets.shape[1], len(x) // 2)
    mu = targets.mean(axis=0)  # (F,)
    _, singular, rows = np.linalg.svd(targets - mu, full_matrices=False)
    basis = rows[:k]  # (k, F)
    prior_var = singular[:k] ** 2 / (len(targets) - 1)  # (k,)
    codes = (y - mu) @ basis.T  # (n, k)
    loadings, offset, noise = voxel_model(codes, x)  # (k, V), (V,), (V,)
    weight = basis.T @ posterior_mean_map(prior_var, loadings, noise)  # (F, V)
    bias = mu - weight @ offset  # (F,)
    note = f"input layer: inverse of a {k}-component encoding model fitted on {len(x)} samples"
    return torch.from_numpy(weight).float(), torch.from_numpy(bias).float(), note


def posterior_mean_map(
    prior_var: np.ndarray, loadings: np.ndarray, noise: np.ndarray
) -> np.ndarray:
    """The linear map from a centred pattern to the posterior mean of its code.

    With ``c ~ N(0, diag(prior_var))`` and ``v = loadings' c + N(0, diag(noise))``, the
    posterior mean is ``M v``, ``M = (diag(1/prior_var) + A D^-1 A')^-1 A D^-1``: a
    ``k x k`` solve however many voxels there are.

    Parameters
    ----------
    prior_var : ndarray, shape (k,)
    loadings : ndarray, shape (k, V)
    noise : ndarray, shape (V,)

    Returns
    -------
    ndarray, shape (k, V)
    """
    weighted = loadings / noise  # (k, V): A D^-1
    precision = np.diag(1.0 / prior_var) + weighted @ loadings.T  # (k, k)
    return np.linalg.solve(precision, weighted)


def voxel_model(codes: np.ndarray, voxels: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-voxel least squares ``voxels ~ codes @ loadings + offset``.

    Parameters
    ----------
    codes : ndarray, shape (n, k)
    voxels : ndarray, shape (n, V)

    Returns
    -------
    loadings : (k, V); offset : (V,); noise : (V,) residual variance (floored above 0).
    """
    n, k = codes.shape
    code_mean, voxel_mean = codes.mean(axis=0), voxels.mean(axis=0)
    centred = codes - code_mean  # (n, k)
    gram = centred.T @ centred  # (k, k)
    alpha = ENCODING_ALPHA * float(np.trace(gram)) / k
    loadings = np.linalg.solve(gram + alpha * np.eye(k), centred.T @ (voxels - voxel_mean))
    residual = voxels - voxel_mean - centred @ loadings  # (n, V)
    noise = (residual**2).sum(axis=0) / max(1, n - k - 1)  # (V,)
    # A voxel the model fits exactly (or a constant one) would get infinite weight.
    floor = 1e-6 * max(float(noise.mean()), 1e-12)
    return loadings, voxel_mean - code_mean @ loadings, np.maximum(noise, floor)
