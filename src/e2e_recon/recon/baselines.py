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
4. Alpha is chosen for the test condition: identifying a held-out image from
   the average of its presentations. Leave-one-image-out cross-validation
   (exact closed form per image, no refit; centring uses the means of the
   whole training set) gives, for each held-out image, the prediction from
   each of its presentations; their mean is the prediction from the image's
   averaged pattern. The alpha whose averaged-pattern predictions give the best
   pairwise pixel identification (the figure the evaluation reports) wins.
   Alphas that tie (identification often saturates) are ranked by the expected
   squared error at ``n`` presentations (``test_trials``, for example 24 for
   the natural test set): the spread of an image's held-out predictions
   measures the trial noise passing through the decoder, so the
   averaged-pattern error is rescaled from the image's own presentation count
   to ``n`` (the noise variance of a mean falls as 1/n). Choosing alpha on
   single-trial errors instead over-shrinks a decoder applied to averages of
   12-24 trials; measured against scikit-learn's ``RidgeCV`` in
   ``tests/recon/test_ridge_oracle.py``.
5. The alpha grid (multiples of the mean eigenvalue of the Gram matrix) widens
   itself, half a decade at a time, while the best alpha sits at an edge.

Predictions come back in the channel order of the training images, upsampled
to their size. Apply the decoder to trial-averaged, z-scored patterns
without the sqrt(n) scaling that the generator needs: a linear decoder trained
on single trials expects the same mean pattern with less noise.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from e2e_recon.errors import DataError, ModelFormatError
from e2e_recon.evaluate.metrics import pairwise_identification, resize_images
from e2e_recon.fileio import atomic_path

#: Format tag of the saved decoder.
RIDGE_FORMAT = "e2e-recon/ridge"
#: Initial alpha grid, as multiples of the mean eigenvalue of the Gram matrix.
DEFAULT_RELATIVE_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-3, 4, 15))
#: The grid widens while the best alpha is at an edge, but not past these multiples.
RELATIVE_ALPHA_LIMITS = (1e-9, 1e10)
_RESIZE_CHUNK = 128  # images resized at a time, to bound memory


class RidgeDecoder:
    """Linear decoder from voxels to a small image, alpha chosen for the test condition.

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
        Penalty chosen for the first of ``test_trials_``; ``alphas_by_trials_``
        maps each test condition (presentations averaged) to its penalty.
        ``alphas_`` and ``cv_errors_`` hold the grid and the cross-validated
        mean squared error per pixel value (0-255 scale) of each, for the first
        condition, within the subspace of the kept components.
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
        self.test_trials_: tuple[int, ...] = (1,)
        self.alphas_by_trials_: dict[int, float] = {}
        self.alphas_ = np.zeros(0)
        self.cv_errors_ = np.zeros(0)
        self.cv_identification_ = np.zeros(0)
        self.voxel_mean_ = np.zeros(0, dtype=np.float32)  # (V,)
        self.image_mean_ = np.zeros(0, dtype=np.float32)  # (D,)
        self.weights_by_trials_: dict[int, np.ndarray] = {}  # n -> (V, r)
        self.components_ = np.zeros((0, 0), dtype=np.float32)  # (r, D)

    @property
    def alpha_(self) -> float:
        """Penalty of the first test condition (NaN before fitting)."""
        return self.alphas_by_trials_.get(self.test_trials_[0], float("nan"))

    @property
    def weights_(self) -> np.ndarray:
        """Voxel weights onto the kept components for the first test condition, (V, r)."""
        return self.weights_by_trials_.get(self.test_trials_[0], np.zeros((0, 0), dtype=np.float32))

    def fit(
        self,
        voxels: np.ndarray,
        images: np.ndarray,
        groups: np.ndarray,
        test_trials: int | Sequence[int] = 1,
    ) -> RidgeDecoder:
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
        test_trials : int or sequence of int
            Presentations averaged in the patterns the decoder will be applied
            to (for example 24 for the natural test set); one penalty is chosen
            for each. The first is the default of :meth:`predict`.

        Returns
        -------
        RidgeDecoder
            ``self``, fitted.
        """
        x, groups = _check_fit_inputs(voxels, images, groups)
        trials = _check_trials(test_trials)
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
        cv = _CrossValidation(eigvals, eigvecs, projected, groups)
        cv.pixels = _PixelView(small, image_mean, components, targets, groups)
        alphas, terms = self._search_alphas(cv, trials[0])
        self.test_trials_ = trials
        self.alphas_by_trials_, self.weights_by_trials_ = {}, {}
        for n in trials:
            alpha = float(alphas[terms.best(n)])
            dual = eigvecs @ (projected / (eigvals + alpha)[:, None])  # (N, r)
            self.alphas_by_trials_[n] = alpha
            self.weights_by_trials_[n] = (xc.T @ dual).astype(np.float32)  # (V, r)
        self.alphas_ = alphas
        n_pixels = small.shape[1]
        self.cv_errors_ = terms.errors(trials[0]) / len(np.unique(groups)) / n_pixels
        self.cv_identification_ = terms.identification
        self.components_ = components.astype(np.float32)  # (r, D)
        self.image_mean_ = image_mean.astype(np.float32)
        return self

    def _search_alphas(
        self, cv: _CrossValidation, first_trials: int
    ) -> tuple[np.ndarray, _CVTerms]:
        """The grid (widened while its best value is at an edge) and its CV terms."""
        if self.alphas is not None:
            alphas = np.asarray(self.alphas, dtype=np.float64)
            return alphas, cv.terms(alphas)
        scale = max(float(cv.eigvals.mean()), np.finfo(np.float64).tiny)
        relative = np.asarray(DEFAULT_RELATIVE_ALPHAS)
        terms = cv.terms(scale * relative)
        low, high = RELATIVE_ALPHA_LIMITS
        while True:
            best = terms.best(first_trials)
            if best == 0 and relative[0] > low:
                extra = relative[0] * np.sqrt(10.0) ** -np.arange(3, 0, -1)
                terms = cv.terms(scale * extra).concat(terms)
                relative = np.concatenate([extra, relative])
            elif best == len(relative) - 1 and relative[-1] < high:
                extra = relative[-1] * np.sqrt(10.0) ** np.arange(1, 4)
                terms = terms.concat(cv.terms(scale * extra))
                relative = np.concatenate([relative, extra])
            else:
                break
        if best in (0, len(relative) - 1):
            why = (
                "the training patterns need almost no shrinkage (few, nearly noiseless samples)"
                if best == 0
                else "the voxels carry almost no information about the images"
            )
            warnings.warn(
                f"ridge alpha {scale * relative[best]:.3g} is at the limit of the search "
                f"({low:g} to {high:g} times the mean eigenvalue of the Gram matrix): {why}",
                stacklevel=3,
            )
        return scale * relative, terms

    def predict(
        self, voxels: np.ndarray, size_px: int | None = None, n_trials: int | None = None
    ) -> np.ndarray:
        """Decode images from patterns.

        Parameters
        ----------
        voxels : ndarray, shape (B, V)
        size_px : int, optional
            Output side; default: the side of the training images.
        n_trials : int, optional
            Presentations averaged in ``voxels``: the penalty chosen for the
            nearest fitted test condition is used. Default: the first one.

        Returns
        -------
        ndarray, shape (B, size_px, size_px, 3), float32, 0-255 scale, not clipped
        """
        if not self.weights_by_trials_:
            raise DataError("RidgeDecoder.predict: the decoder is not fitted; call fit() or load()")
        weights = self.weights_by_trials_[self.nearest_trials(n_trials)]  # (V, r)
        x = np.asarray(voxels, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != weights.shape[0]:
            raise DataError(
                f"RidgeDecoder.predict: voxels have shape {x.shape}; expected "
                f"(B, {weights.shape[0]}) as at fit time"
            )
        flat = self.image_mean_ + ((x - self.voxel_mean_) @ weights) @ self.components_
        small = flat.reshape(len(x), self.decode_px, self.decode_px, 3)  # (B, d, d, 3)
        return resize_images(small, size_px or self.output_px)

    def nearest_trials(self, n_trials: int | None) -> int:
        """The fitted test condition closest to ``n_trials`` (on a log scale)."""
        if n_trials is None:
            return self.test_trials_[0]
        return min(self.test_trials_, key=lambda n: abs(np.log(n) - np.log(max(n_trials, 1))))

    def save(self, path: str | Path) -> Path:
        """Write the fitted decoder to ``path`` (.npz), atomically."""
        path = Path(path)
        trials = np.asarray(self.test_trials_, dtype=np.int64)
        arrays: dict[str, Any] = {
            "format": np.array(RIDGE_FORMAT),
            "version": np.array(2),
            "decode_px": np.array(self.decode_px),
            "output_px": np.array(self.output_px),
            "test_trials": trials,
            "alpha": np.array([self.alphas_by_trials_[n] for n in self.test_trials_]),
            "alphas": self.alphas_,
            "cv_errors": self.cv_errors_,
            "voxel_mean": self.voxel_mean_,
            "image_mean": self.image_mean_,
            "weights": np.stack([self.weights_by_trials_[n] for n in self.test_trials_]),
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
                trials = tuple(int(n) for n in np.atleast_1d(data.get("test_trials", [1])))
                alphas = np.atleast_1d(data["alpha"])
                weights = data["weights"].reshape(len(trials), *data["weights"].shape[-2:])
                decoder.test_trials_ = trials
                decoder.alphas_by_trials_ = {
                    n: float(a) for n, a in zip(trials, alphas, strict=True)
                }
                decoder.weights_by_trials_ = dict(zip(trials, weights, strict=True))
                decoder.alphas_, decoder.cv_errors_ = data["alphas"], data["cv_errors"]
                decoder.voxel_mean_, decoder.image_mean_ = data["voxel_mean"], data["image_mean"]
                decoder.components_ = data["components"]
        except (OSError, KeyError, ValueError) as exc:
            raise ModelFormatError(
                f"{path}: not a ridge decoder saved by RidgeDecoder.save ({exc}); refit it"
            ) from exc
        decoder.n_components = decoder.components_.shape[0]
        return decoder


def _check_trials(test_trials: int | Sequence[int]) -> tuple[int, ...]:
    values = (test_trials,) if isinstance(test_trials, int | np.integer) else tuple(test_trials)
    trials = tuple(dict.fromkeys(int(n) for n in values))
    if not trials or min(trials) < 1:
        raise DataError(
            f"RidgeDecoder.fit: test_trials={test_trials!r}; expected presentation counts >= 1"
        )
    return trials


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


@dataclass(frozen=True)
class _CVTerms:
    """Leave-one-image-out terms per alpha, from which the error at any ``n`` follows.

    ``mean_sq`` sums, over held-out images, the squared error of the mean of the
    image's held-out predictions (the prediction from its averaged pattern).
    ``spread`` sums, over images with at least 2 presentations, the unbiased
    variance of those predictions around their mean: the trial noise one
    presentation passes through the decoder. ``inverse_sizes`` is the sum of
    1 / presentations over all images.
    """

    mean_sq: np.ndarray  # (k,)
    spread: np.ndarray  # (k,)
    identification: np.ndarray  # (k,) held-out pairwise pixel identification
    spread_groups: int
    n_groups: int
    inverse_sizes: float

    def best(self, n_trials: int) -> int:
        """Index of the chosen alpha: best held-out identification, ties by error at n."""
        top = np.nanmax(self.identification) if np.isfinite(self.identification).any() else 0.0
        tied = ~(self.identification < top - 1e-9)  # NaN identification: decided by error
        errors = np.where(tied, self.errors(n_trials), np.inf)
        return int(np.argmin(errors))

    def errors(self, n_trials: int) -> np.ndarray:
        """Expected squared error summed over images, for patterns averaged over ``n_trials``."""
        if self.spread_groups == 0:
            return self.mean_sq  # one presentation per image: the noise cannot be measured
        noise = self.spread / self.spread_groups  # (k,) per image and presentation
        return self.mean_sq + noise * (self.n_groups / n_trials - self.inverse_sizes)

    def concat(self, other: _CVTerms) -> _CVTerms:
        """Terms of this grid followed by ``other``'s (same data)."""
        return _CVTerms(
            np.concatenate([self.mean_sq, other.mean_sq]),
            np.concatenate([self.spread, other.spread]),
            np.concatenate([self.identification, other.identification]),
            self.spread_groups,
            self.n_groups,
            self.inverse_sizes,
        )


class _CrossValidation:
    """Exact leave-one-image-out residuals of dual ridge, for any alpha.

    With the hat matrix ``H = Q diag(w) Q^T`` (``w = lambda / (lambda + alpha)``),
    the residuals of group ``G`` refitted without it are exactly
    ``(I - H_GG)^-1 (y_G - (H y)_G)``.
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
        sizes = np.bincount(groups)
        sizes = sizes[sizes > 0]
        self.n_groups = int(sizes.size)
        self.inverse_sizes = float(np.sum(1.0 / sizes))
        self.spread_groups = int(np.sum(sizes >= 2))
        self.pixels: _PixelView | None = None

    def held_out_residuals(self, alpha: float) -> list[np.ndarray] | None:
        """Each block's residuals refitted without it: (n_groups, g, r) each; None if singular."""
        shrink = self.eigvals / (self.eigvals + alpha)  # (N,)
        weights = (1.0 - shrink).astype(np.float32)[:, None]
        residual = self.eigvecs32 @ (weights * self.projected32)  # (N, r)
        out = []
        for rows, q in self.blocks:
            hat = (q * shrink) @ q.transpose(0, 2, 1)  # (n_groups, g, g) = H_GG
            try:
                held = np.linalg.solve(np.eye(rows.shape[1]) - hat, residual[rows])
            except np.linalg.LinAlgError:
                return None
            out.append(held.astype(np.float64))
        return out

    def terms(self, alphas: np.ndarray) -> _CVTerms:
        """:class:`_CVTerms` for each alpha."""
        k = len(alphas)
        mean_sq, spread, identification = np.empty(k), np.empty(k), np.full(k, np.nan)
        for i, alpha in enumerate(alphas):
            held = self.held_out_residuals(float(alpha))
            if held is None:
                mean_sq[i], spread[i] = np.inf, 0.0
                continue
            mean_sq[i] = sum(float(np.sum(r.mean(axis=1) ** 2)) for r in held)
            spread[i] = sum(
                float(np.sum(r.var(axis=1, ddof=1).sum(axis=-1))) for r in held if r.shape[1] > 1
            )
            if self.pixels is not None:
                means = [r.mean(axis=1) for r in held]  # (n_groups, r) per block
                identification[i] = self.pixels.identification(self.blocks, means)
        return _CVTerms(
            mean_sq, spread, identification, self.spread_groups, self.n_groups, self.inverse_sizes
        )


@dataclass(frozen=True)
class _PixelView:
    """What turns held-out residuals into images: for the identification criterion.

    The prediction from a held-out image's averaged pattern is its target minus
    the mean held-out residual, in component coordinates; in pixels it is the
    mean image plus those coordinates times the components. It is compared with
    the exact (unprojected) training images by pairwise identification, the
    figure the evaluation reports.
    """

    small: np.ndarray  # (M, D) training images at the decoded size
    image_mean: np.ndarray  # (D,)
    components: np.ndarray  # (r, D)
    targets: np.ndarray  # (N, r) each sample's image in component coordinates
    groups: np.ndarray  # (N,) image row of each sample

    def identification(
        self, blocks: list[tuple[np.ndarray, np.ndarray]], mean_residuals: list[np.ndarray]
    ) -> float:
        first_rows = np.concatenate([rows[:, 0] for rows, _ in blocks])  # (M',)
        residual = np.concatenate(mean_residuals)  # (M', r)
        coords = self.targets[first_rows] - residual  # (M', r)
        pred = self.image_mean + coords @ self.components  # (M', D)
        true = self.small[self.groups[first_rows]]  # (M', D)
        return float(np.mean(pairwise_identification(pred, true)))


def _group_blocks(groups: np.ndarray) -> list[np.ndarray]:
    """Sample indices per group, stacked by group size: list of (n_groups, g) arrays."""
    order = np.argsort(groups, kind="stable")
    _, starts, sizes = np.unique(groups[order], return_index=True, return_counts=True)
    by_size: dict[int, list[np.ndarray]] = {}
    for start, size in zip(starts, sizes, strict=True):
        by_size.setdefault(int(size), []).append(order[start : start + size])
    return [np.stack(rows) for rows in by_size.values()]
