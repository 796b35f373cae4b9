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
4. Alpha is chosen from a grid (multiples of the mean eigenvalue of the Gram
   matrix) by leave-one-group-out cross-validation over whole images: all
   presentations of an image are held out together (exact closed form per
   group, no refit). Centring uses the means of the whole training set.

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
#: Alpha grid, as multiples of the mean eigenvalue of the Gram matrix.
DEFAULT_RELATIVE_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-3, 4, 15))
_RESIZE_CHUNK = 128  # images resized at a time, to bound memory


class RidgeDecoder:
    """Linear decoder from voxels to a small image, alpha chosen by grouped CV.

    Parameters
    ----------
    decode_px : int
        Side of the decoded image; predictions are upsampled to the size of the
        training images (or ``size_px`` given to :meth:`predict`).
    n_components : int or None
        Principal components of the training images kept as targets;
        ``None`` keeps all (exact pixel ridge).
    alphas : sequence of float, optional
        Absolute ridge penalties to try; default: :data:`DEFAULT_RELATIVE_ALPHAS`
        times the mean eigenvalue of the Gram matrix.

    Attributes
    ----------
    alpha_ : float
        Chosen penalty. ``alphas_`` and ``cv_errors_`` hold the grid and the
        cross-validated mean squared error per pixel value (0-255 scale) of
        each, within the subspace of the kept components.
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
        images : ndarray, shape (M, H, H, 3)
            The distinct training images (any channel order, 0-255).
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
        alphas = self._alpha_grid(eigvals)
        errors = _grouped_cv_errors(eigvals, eigvecs, projected, groups, alphas)
        best = int(np.argmin(errors))
        if len(alphas) > 1 and best in (0, len(alphas) - 1):
            warnings.warn(
                f"ridge alpha {alphas[best]:.3g} is at the edge of the grid "
                f"[{alphas[0]:.3g}, {alphas[-1]:.3g}]; pass a wider alphas grid",
                stacklevel=2,
            )
        dual = eigvecs @ (projected / (eigvals + alphas[best])[:, None])  # (N, r)
        self.alpha_ = float(alphas[best])
        self.alphas_ = alphas
        self.cv_errors_ = errors / targets.shape[0] / small.shape[1]  # per sample and pixel
        self.weights_ = (xc.T @ dual).astype(np.float32)  # (V, r)
        self.components_ = components.astype(np.float32)  # (r, D)
        self.image_mean_ = image_mean.astype(np.float32)
        return self

    def _alpha_grid(self, eigvals: np.ndarray) -> np.ndarray:
        if self.alphas is not None:
            return np.asarray(self.alphas, dtype=np.float64)
        scale = max(float(eigvals.mean()), np.finfo(np.float64).tiny)
        return scale * np.asarray(DEFAULT_RELATIVE_ALPHAS)

    def predict(self, voxels: np.ndarray, size_px: int | None = None) -> np.ndarray:
        """Decode images from patterns.

        Parameters
        ----------
        voxels : ndarray, shape (B, V)
        size_px : int, optional
            Output side; default: the side of the training images.

        Returns
        -------
        ndarray, shape (B, size_px, size_px, 3), float32, 0-255 scale, not clipped
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
        small = flat.reshape(len(x), self.decode_px, self.decode_px, 3)  # (B, d, d, 3)
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
    if images.ndim != 4 or images.shape[1] != images.shape[2] or images.shape[3] != 3:
        raise DataError(f"RidgeDecoder.fit: images {images.shape}; expected (M, H, H, 3)")
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
    """(M, H, H, 3) -> (M, size, size, 3) float64, in chunks to bound memory."""
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


def _grouped_cv_errors(
    eigvals: np.ndarray,
    eigvecs: np.ndarray,
    projected: np.ndarray,
    groups: np.ndarray,
    alphas: np.ndarray,
) -> np.ndarray:
    """Leave-one-group-out squared error summed over samples and targets, per alpha.

    With the hat matrix ``H = Q diag(w) Q^T`` (``w = lambda / (lambda + alpha)``),
    the residuals of group ``G`` refitted without it are exactly
    ``(I - H_GG)^-1 (y_G - (H y)_G)``.
    """
    # Group rows of the eigenvectors, gathered once: list of (n_groups, g, N).
    blocks = [(rows, eigvecs[rows]) for rows in _group_blocks(groups)]
    # The residual product is the costly step (N x N x r per alpha): float32 is
    # plenty for comparing alphas; the small g x g systems stay in float64.
    eigvecs32, projected32 = eigvecs.astype(np.float32), projected.astype(np.float32)
    errors = np.empty(len(alphas))
    for k, alpha in enumerate(alphas):
        shrink = eigvals / (eigvals + alpha)  # (N,)
        residual = eigvecs32 @ ((1.0 - shrink).astype(np.float32)[:, None] * projected32)  # (N, r)
        total = 0.0
        for rows, q in blocks:
            hat = (q * shrink) @ q.transpose(0, 2, 1)  # (n_groups, g, g) = H_GG
            try:
                held_out = np.linalg.solve(np.eye(rows.shape[1]) - hat, residual[rows])
            except np.linalg.LinAlgError:
                total = np.inf
                break
            total += float(np.sum(held_out.astype(np.float64) ** 2))  # (n_groups, g, r)
        errors[k] = total
    return errors


def _group_blocks(groups: np.ndarray) -> list[np.ndarray]:
    """Sample indices per group, stacked by group size: list of (n_groups, g) arrays."""
    order = np.argsort(groups, kind="stable")
    _, starts, sizes = np.unique(groups[order], return_index=True, return_counts=True)
    by_size: dict[int, list[np.ndarray]] = {}
    for start, size in zip(starts, sizes, strict=True):
        by_size.setdefault(int(size), []).append(order[start : start + size])
    return [np.stack(rows) for rows in by_size.values()]
