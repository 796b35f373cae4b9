"""Ridge-regression pixel decoder: the linear baseline beside the end-to-end model.

The decoder maps a voxel pattern to the pixels of a small image and upsamples
the result. How it is fitted:

1. Images are resized (bicubic, antialiased) to ``decode_px`` (64 by default:
   12,288 outputs instead of 154,587 at 227 px) and flattened.
2. The targets are projected on their first ``n_components`` principal
   components (512 by default; ``None`` keeps all, which is exact ridge on
   pixels since the training set has only as many distinct images as rows of
   components). Ridge is linear in the targets, so this equals exact pixel
   ridge followed by a projection on that subspace.
3. Dual (kernel) form: one eigendecomposition of the centred Gram matrix
   ``X X^T`` (N x N, N = number of samples) serves every alpha.
4. Alpha is chosen for the test condition as closely as the training data
   allow: predicting a held-out image from the average of its presentations
   (test patterns are averages of 10-24 presentations). Leave-one-image-out
   cross-validation (exact closed form per image, no refit; centring uses the
   means of the whole training set) gives, for each held-out image, the
   prediction from each of its presentations; their mean is the prediction from
   the image's averaged pattern, and the alpha with the least squared error of
   those predictions wins. Scoring each presentation's prediction on its own
   (as before) measured the single-trial condition and over-shrank a decoder
   that is applied to averages. With one presentation per image both are plain
   leave-one-image-out error.
5. The grid (multiples of the mean eigenvalue of the Gram matrix) widens itself
   half a decade at a time while its best value sits at an edge, down to 1e-3
   times the mean eigenvalue: below that the fit interpolates the training
   samples and leave-one-image-out error stops measuring test error (on the
   project's simulated subjects it fell towards 0 where test identification was
   at its lowest). Held to scikit-learn's ``RidgeCV`` in
   ``tests/recon/test_ridge_oracle.py``.

Predictions come back in the channel order of the training images, upsampled
to their size. Apply the decoder to trial-averaged, z-scored patterns
without the sqrt(n) scaling that the generator needs: a linear decoder trained
on single trials expects the same mean pattern with less noise.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from e2e_recon.errors import DataError, ModelFormatError
from e2e_recon.evaluate.metrics import resize_images
from e2e_recon.fileio import atomic_path

#: Format tag of the saved decoder.
RIDGE_FORMAT = "e2e-recon/ridge"
#: Initial alpha grid, as multiples of the mean eigenvalue of the Gram matrix.
DEFAULT_RELATIVE_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-3, 4, 15))
#: The grid widens while the best alpha is at an edge, but not past these multiples.
RELATIVE_ALPHA_LIMITS = (1e-3, 1e10)
_RESIZE_CHUNK = 128  # images resized at a time, to bound memory


class RidgeDecoder:
    """Linear decoder from voxels to a small image, alpha chosen for averaged patterns.

    Parameters
    ----------
    decode_px : int
        Side of the decoded image; predictions are upsampled to the size of the
        training images (or ``size_px`` given to :meth:`predict`).
    n_components : int or None
        Principal components of the training images kept as targets;
        ``None`` keeps all (exact pixel ridge).
    alphas : sequence of float, optional
        Absolute ridge penalties to try (used as given); default: a grid of
        :data:`DEFAULT_RELATIVE_ALPHAS` times the mean eigenvalue of the Gram
        matrix that widens while its best value is at an edge.

    Attributes
    ----------
    alpha_ : float
        Chosen penalty. ``alphas_`` and ``cv_errors_`` hold the grid and the
        cross-validated mean squared error per image and pixel value (0-255
        scale) of predictions from held-out images' averaged patterns, within the
        subspace of the kept components.
    """

    def __init__(
        self,
        decode_px: int = 64,
        n_components: int | None = 512,
        alphas: Sequence[float] | None = None,
    ):
        if decode_px < 1:
            raise DataError(f"RidgeDecoder: decode_px={decode_px}; expected a positive size")
        self.decode_px = decode_px
        self.n_components = n_components
        self.alphas = None if alphas is None else tuple(float(a) for a in alphas)
        self.output_px = decode_px
        self.alpha_ = float("nan")
        self.alphas_ = np.zeros(0)
        self.cv_errors_ = np.zeros(0)
        self.voxel_mean_ = np.zeros(0, dtype=np.float32)  # (V,)
        self.image_mean_ = np.zeros(0, dtype=np.float32)  # (D,)
        self.weights_ = np.zeros((0, 0), dtype=np.float32)  # (V, r)
        self.components_ = np.zeros((0, 0), dtype=np.float32)  # (r, D)

    def fit(self, voxels: np.ndarray, images: np.ndarray, groups: np.ndarray) -> RidgeDecoder:
        """Fit on training samples.

        Parameters
        ----------
        voxels : ndarray, shape (N, V)
            One (z-scored) pattern per sample.
        images : ndarray, shape (M, H, H, C)
            The distinct training images (any channel order, 0-255); C = 3, or 1
            for greyscale targets.
        groups : ndarray of int, shape (N,)
            Row of ``images`` each sample was viewing. Samples with the same
            value are held out together in cross-validation.

        Returns
        -------
        RidgeDecoder
            ``self``, fitted.
        """
        x, groups = _check_fit_inputs(voxels, images, groups)
        self.output_px = int(images.shape[1])
        small = _downsample(images, self.decode_px).reshape(len(images), -1)  # (M, D)
        counts = np.bincount(groups, minlength=len(images)).astype(np.float64)  # (M,)
        self.voxel_mean_ = x.mean(axis=0)  # (V,)
        image_mean = counts @ small / counts.sum()  # (D,), mean over samples
        components = _principal_components(small - image_mean, counts, self.n_components)
        targets = (small[groups] - image_mean) @ components.T  # (N, r)
        xc = x - self.voxel_mean_  # (N, V)
        gram = (xc @ xc.T).astype(np.float64)  # (N, N)
        eigvals, eigvecs = np.linalg.eigh(gram)  # (N,), (N, N)
        eigvals = np.clip(eigvals, 0.0, None)
        projected = eigvecs.T @ targets  # (N, r)
        alphas, errors = self._search_alphas(_CrossValidation(eigvals, eigvecs, projected, groups))
        best = int(np.argmin(errors))
        dual = eigvecs @ (projected / (eigvals + alphas[best])[:, None])  # (N, r)
        self.alpha_ = float(alphas[best])
        self.alphas_ = alphas
        self.cv_errors_ = errors / len(np.unique(groups)) / small.shape[1]  # per image and pixel
        self.weights_ = (xc.T @ dual).astype(np.float32)  # (V, r)
        self.components_ = components.astype(np.float32)  # (r, D)
        self.image_mean_ = image_mean.astype(np.float32)
        return self

    def _search_alphas(self, cv: _CrossValidation) -> tuple[np.ndarray, np.ndarray]:
        """The grid (widened while its best value is at an edge) and its CV errors."""
        if self.alphas is not None:
            alphas = np.asarray(self.alphas, dtype=np.float64)
            return alphas, cv.errors(alphas)
        scale = max(float(cv.eigvals.mean()), np.finfo(np.float64).tiny)
        low, high = RELATIVE_ALPHA_LIMITS
        relative = np.asarray([a for a in DEFAULT_RELATIVE_ALPHAS if low <= a <= high])
        errors = cv.errors(scale * relative)
        while True:
            best = int(np.argmin(errors))
            if best == 0 and relative[0] > low * 1.0001:
                extra = np.maximum(relative[0] * np.sqrt(10.0) ** -np.arange(3, 0, -1), low)
                extra = np.unique(extra[extra < relative[0]])
                errors = np.concatenate([cv.errors(scale * extra), errors])
                relative = np.concatenate([extra, relative])
            elif best == len(relative) - 1 and relative[-1] < high:
                extra = relative[-1] * np.sqrt(10.0) ** np.arange(1, 4)
                errors = np.concatenate([errors, cv.errors(scale * extra)])
                relative = np.concatenate([relative, extra])
            else:
                break
        if best == len(relative) - 1:
            warnings.warn(
                f"ridge alpha {scale * relative[best]:.3g} is at the top of the search "
                f"({high:g} times the mean eigenvalue of the Gram matrix): the voxels carry "
                "almost no linear information about the images",
                stacklevel=3,
            )
        return scale * relative, errors

    def predict(self, voxels: np.ndarray, size_px: int | None = None) -> np.ndarray:
        """Decode images from patterns.

        Parameters
        ----------
        voxels : ndarray, shape (B, V)
        size_px : int, optional
            Output side; default: the side of the training images.

        Returns
        -------
        ndarray, shape (B, size_px, size_px, C), float32, 0-255 scale, not clipped; C as
        the training images (3, or 1 for greyscale)
        """
        if self.weights_.size == 0:
            raise DataError("RidgeDecoder.predict: the decoder is not fitted; call fit() or load()")
        x = np.asarray(voxels, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.weights_.shape[0]:
            raise DataError(
                f"RidgeDecoder.predict: voxels have shape {x.shape}; expected "
                f"(B, {self.weights_.shape[0]}) as at fit time"
            )
        flat = self.image_mean_ + ((x - self.voxel_mean_) @ self.weights_) @ self.components_
        small = flat.reshape(len(x), self.decode_px, self.decode_px, -1)  # (B, d, d, C)
        return resize_images(small, size_px or self.output_px)

    def save(self, path: str | Path) -> Path:
        """Write the fitted decoder to ``path`` (.npz), atomically."""
        path = Path(path)
        arrays: dict[str, Any] = {
            "format": np.array(RIDGE_FORMAT),
            "version": np.array(1),
            "decode_px": np.array(self.decode_px),
            "output_px": np.array(self.output_px),
            "alpha": np.array(self.alpha_),
            "alphas": self.alphas_,
            "cv_errors": self.cv_errors_,
            "voxel_mean": self.voxel_mean_,
            "image_mean": self.image_mean_,
            "weights": self.weights_,
            "components": self.components_,
        }
        with atomic_path(path) as tmp, tmp.open("wb") as handle:
            np.savez(handle, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> RidgeDecoder:
        """Read a decoder written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != RIDGE_FORMAT:
                    raise ModelFormatError(
                        f"{path}: format {str(data['format'])!r}, expected {RIDGE_FORMAT!r}"
                    )
                decoder = cls(decode_px=int(data["decode_px"]))
                decoder.output_px = int(data["output_px"])
                decoder.alpha_ = float(data["alpha"])
                decoder.alphas_, decoder.cv_errors_ = data["alphas"], data["cv_errors"]
                decoder.voxel_mean_, decoder.image_mean_ = data["voxel_mean"], data["image_mean"]
                decoder.weights_, decoder.components_ = data["weights"], data["components"]
        except (OSError, KeyError, ValueError) as exc:
            raise ModelFormatError(
                f"{path}: not a ridge decoder saved by RidgeDecoder.save ({exc}); refit it"
            ) from exc
        decoder.n_components = decoder.components_.shape[0]
        return decoder


def _check_fit_inputs(
    voxels: np.ndarray, images: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(voxels, dtype=np.float32)
    g = np.asarray(groups)
    if x.ndim != 2 or g.shape != (x.shape[0],):
        raise DataError(
            f"RidgeDecoder.fit: voxels {x.shape} and groups {g.shape}; expected (N, V) and (N,)"
        )
    if images.ndim != 4 or images.shape[1] != images.shape[2] or images.shape[3] not in (1, 3):
        raise DataError(
            f"RidgeDecoder.fit: images {images.shape}; expected (M, H, H, 3), or (M, H, H, 1) grey"
        )
    if not np.issubdtype(g.dtype, np.integer) or g.min() < 0 or g.max() >= len(images):
        raise DataError(
            f"RidgeDecoder.fit: groups must be integer rows of images (0..{len(images) - 1})"
        )
    if len(np.unique(g)) < 2:
        raise DataError("RidgeDecoder.fit: cross-validation needs samples of at least 2 images")
    if not np.isfinite(x).all():
        raise DataError("RidgeDecoder.fit: voxels contain NaN or inf; drop those columns first")
    return x, g.astype(np.int64)


def _downsample(images: np.ndarray, size_px: int) -> np.ndarray:
    """(M, H, H, C) -> (M, size, size, C) float64, in chunks to bound memory."""
    chunks = [
        resize_images(images[i : i + _RESIZE_CHUNK], size_px)
        for i in range(0, len(images), _RESIZE_CHUNK)
    ]
    return np.concatenate(chunks).astype(np.float64)


def _principal_components(
    centred: np.ndarray, counts: np.ndarray, n_components: int | None
) -> np.ndarray:
    """Orthonormal rows spanning the sample-weighted principal subspace, (r, D).

    Through the small image Gram matrix (M x M) rather than an SVD of the
    M x D pixel matrix: several times faster for M much smaller than D.
    """
    weighted = centred[counts > 0] * np.sqrt(counts[counts > 0])[:, None]  # (M', D)
    eigvals, eigvecs = np.linalg.eigh(weighted @ weighted.T)  # ascending, (M',), (M', M')
    eigvals, eigvecs = eigvals[::-1], eigvecs[:, ::-1]
    rank = int((eigvals > max(eigvals[0], 0.0) * 1e-10).sum())
    if rank == 0:
        raise DataError("RidgeDecoder.fit: all training images are identical; nothing to decode")
    keep = max(1, rank if n_components is None else min(n_components, rank))
    components = (eigvecs[:, :keep].T @ weighted) / np.sqrt(eigvals[:keep])[:, None]
    return components  # (keep, D)


class _CrossValidation:
    """Exact leave-one-image-out residuals of dual ridge, for any alpha.

    With the hat matrix ``H = Q diag(w) Q^T`` (``w = lambda / (lambda + alpha)``),
    the residuals of group ``G`` refitted without it are exactly
    ``(I - H_GG)^-1 (y_G - (H y)_G)``. ``1 - w = alpha / (lambda + alpha)`` is used
    as such, never computed as ``1 - w``, and ``(I - H)_GG = Q_G diag(1 - w) Q_G^T``
    since ``Q`` is orthogonal: no cancellation at small alphas.
    """

    def __init__(
        self, eigvals: np.ndarray, eigvecs: np.ndarray, projected: np.ndarray, groups: np.ndarray
    ) -> None:
        self.eigvals = eigvals  # (N,)
        # Group rows of the eigenvectors, gathered once: list of (n_groups, g, N).
        self.blocks = [(rows, eigvecs[rows]) for rows in _group_blocks(groups)]
        # The residual product is the costly step (N x N x r per alpha): float32 is
        # plenty for comparing alphas; the small g x g systems stay in float64.
        self.eigvecs32 = eigvecs.astype(np.float32)
        self.projected32 = projected.astype(np.float32)

    def held_out_residuals(self, alpha: float) -> list[np.ndarray] | None:
        """Each block's residuals refitted without it: (n_groups, g, r) each; None if singular."""
        keep = alpha / (self.eigvals + alpha)  # (N,) = 1 - w
        residual = self.eigvecs32 @ (keep.astype(np.float32)[:, None] * self.projected32)  # (N, r)
        out = []
        for rows, q in self.blocks:
            complement = (q * keep) @ q.transpose(0, 2, 1)  # (n_groups, g, g) = (I - H)_GG
            try:
                held = np.linalg.solve(complement, residual[rows])
            except np.linalg.LinAlgError:
                return None
            out.append(held.astype(np.float64))
        return out

    def errors(self, alphas: np.ndarray) -> np.ndarray:
        """Squared error of each held-out image's averaged-pattern prediction, summed, per alpha.

        The residuals of an image's presentations averaged are the residual of the
        prediction from its averaged pattern (the decoder is linear).
        """
        out = np.empty(len(alphas))
        for k, alpha in enumerate(alphas):
            held = self.held_out_residuals(float(alpha))
            out[k] = (
                np.inf if held is None else sum(float(np.sum(r.mean(axis=1) ** 2)) for r in held)
            )
        return out


def _group_blocks(groups: np.ndarray) -> list[np.ndarray]:
    """Sample indices per group, stacked by group size: list of (n_groups, g) arrays."""
    order = np.argsort(groups, kind="stable")
    _, starts, sizes = np.unique(groups[order], return_index=True, return_counts=True)
    by_size: dict[int, list[np.ndarray]] = {}
    for start, size in zip(starts, sizes, strict=True):
        by_size.setdefault(int(size), []).append(order[start : start + size])
    return [np.stack(rows) for rows in by_size.values()]
