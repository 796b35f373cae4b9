"""Image-reconstruction metrics as plain NumPy functions.

- :func:`pairwise_identification`: the paper's objective measure, with the same
  definition as the lab's ``bdpy.evals.metrics.pairwise_identification``
  (similarity = 1 - scipy ``cdist`` distance; ties count as failures; NaN
  handling as described in the function).
- :func:`pixcorr`, :func:`ssim_scores`: the per-image pixel scores of current
  benchmarks.
- :func:`feature_identification`: the same two-way identification in the feature
  space of a network, the usual software stand-in for human judgment.
- :func:`bootstrap_ci`: percentile intervals by resampling images.

All functions take one row (or one image) per item, and item ``i`` of ``pred``
is the reconstruction of item ``i`` of ``true``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial.distance import cdist
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity

from e2e_recon.errors import DataError

#: Chance level of two-way (pairwise) identification.
CHANCE_IDENTIFICATION = 0.5

#: SSIM settings of current benchmarks (greyscale, Gaussian window, population
#: covariance, data range 1 on images scaled to 0-1).
SSIM_SETTINGS: dict[str, object] = {
    "greyscale": True,
    "gaussian_weights": True,
    "sigma": 1.5,
    "use_sample_covariance": False,
    "data_range": 1.0,
}


def item_rows(array: np.ndarray, name: str) -> np.ndarray:
    """(N, ...) -> (N, D) view in the array's own dtype, checking there is at least one item."""
    x = np.asarray(array)
    if x.ndim < 1 or x.shape[0] == 0:
        raise DataError(f"{name}: expected an array with one row per item, got shape {x.shape}")
    return x.reshape(x.shape[0], -1)


def _as_rows(array: np.ndarray, name: str) -> np.ndarray:
    """(N, ...) -> (N, D) float64, checking there is at least one item."""
    return item_rows(array, name).astype(np.float64, copy=False)


def _require_identifiable(n_items: int, what: str) -> None:
    if n_items < 2:
        raise DataError(
            f"{what}: identification is undefined for fewer than 2 images (got {n_items}); "
            "evaluate a set with at least 2 images"
        )


def pairwise_identification(
    pred: np.ndarray,
    true: np.ndarray,
    metric: str = "correlation",
    remove_nan: bool = True,
    remove_nan_dist: bool = True,
    single_trial: bool = False,
    pred_labels: Sequence[object] | np.ndarray | None = None,
    true_labels: Sequence[object] | np.ndarray | None = None,
) -> np.ndarray:
    """Pairwise (two-way) identification accuracy of each prediction.

    Item ``i`` is scored by the fraction of the other candidates ``j`` whose
    similarity to ``pred[i]`` is strictly lower than that of its own target;
    a tie counts as a failure. Similarity is ``1 - cdist(pred, true, metric)``,
    so the default is Pearson correlation. Chance is 0.5.

    Parameters
    ----------
    pred : ndarray, shape (N, ...)
        Predictions (reconstructions, decoded features); flattened per row.
    true : ndarray, shape (N, ...)
        Targets, same order as ``pred`` (or, with ``single_trial``, one row per
        candidate, in the order of ``true_labels``).
    metric : str
        Any metric of :func:`scipy.spatial.distance.cdist`.
    remove_nan : bool
        Drop columns that are NaN in any row of ``pred`` or ``true`` (warns).
    remove_nan_dist : bool
        Leave NaN similarities out of the comparison of their row (warns), so
        the denominator shrinks. If an item's own similarity is NaN, every
        comparison of its row is left out and its score is 0. With ``False``,
        NaN comparisons count as failures.
    single_trial : bool
        ``pred`` rows are single trials labelled by ``pred_labels``; each is
        compared with the ``true`` row whose ``true_labels`` entry matches.
    pred_labels, true_labels : sequence, optional
        Labels for ``single_trial``.

    Returns
    -------
    ndarray, shape (N,)
        Accuracy per prediction, in [0, 1].

    Raises
    ------
    DataError
        Fewer than 2 candidates (identification is undefined), mismatched
        shapes, or a single-trial label without a candidate.
    """
    p = _as_rows(pred, "pred")
    t = _as_rows(true, "true")
    if p.shape[1] != t.shape[1] or (not single_trial and p.shape[0] != t.shape[0]):
        raise DataError(
            f"pairwise identification: pred has shape {p.shape} and true {t.shape}; "
            "expected one target row per prediction with the same number of values"
        )
    _require_identifiable(t.shape[0], "pairwise identification")
    if remove_nan:
        nan_cols = np.isnan(p).any(axis=0) | np.isnan(t).any(axis=0)
        if nan_cols.any():
            warnings.warn(f"NaN column removed ({int(nan_cols.sum())})", stacklevel=2)
            p, t = p[:, ~nan_cols], t[:, ~nan_cols]
    similarity = 1.0 - cdist(p, t, metric=metric)  # (N_pred, N_true)
    own_index = _own_index(p.shape[0], single_trial, pred_labels, true_labels)
    own = similarity[np.arange(p.shape[0]), own_index]  # (N_pred,)
    diff = similarity - own[:, None]  # (N_pred, N_true); own column is 0
    with np.errstate(invalid="ignore"):
        beaten = diff < 0
    if not remove_nan_dist:
        return beaten.sum(axis=1) / (t.shape[0] - 1)
    n_nan = int(np.isnan(diff).sum())
    if n_nan:
        warnings.warn(f"NaN value detected in the distance matrix ({n_nan})", stacklevel=2)
    return scores_leaving_out_nan(diff)


def scores_leaving_out_nan(diff: np.ndarray) -> np.ndarray:
    """Two-way identification scores from similarities relative to each row's own target.

    Parameters
    ----------
    diff : ndarray, shape (N, M)
        Similarity of prediction i with candidate j minus that with its own target
        (so the own column is 0, or NaN when the own similarity is NaN).

    Returns
    -------
    ndarray, shape (N,)
        Fraction of the other candidates strictly less similar than the target, NaN
        comparisons left out (bdpy's ``remove_nan_dist``); a NaN own similarity scores
        0, and a row with nothing left to compare is NaN.
    """
    with np.errstate(invalid="ignore"):
        beaten = (diff < 0).sum(axis=1)
    n_compared = (~np.isnan(diff)).sum(axis=1) - 1  # minus the item itself
    # A NaN own similarity leaves nothing to compare: score 0 (n_compared is -1 there).
    scores = np.where(n_compared > 0, beaten / np.maximum(n_compared, 1), 0.0)
    return np.where(n_compared == 0, np.nan, scores)


def _own_index(
    n_pred: int,
    single_trial: bool,
    pred_labels: Sequence[object] | np.ndarray | None,
    true_labels: Sequence[object] | np.ndarray | None,
) -> np.ndarray:
    """Column of each prediction's own target in the similarity matrix."""
    if not single_trial:
        return np.arange(n_pred)
    if pred_labels is None or true_labels is None:
        raise DataError("pairwise identification: single_trial needs pred_labels and true_labels")
    lookup = {label: i for i, label in reversed(list(enumerate(np.asarray(true_labels).tolist())))}
    index = []
    for label in np.asarray(pred_labels).tolist():
        if label not in lookup:
            raise DataError(f"pairwise identification: pred label {label!r} not in true_labels")
        index.append(lookup[label])
    return np.asarray(index, dtype=np.int64)


def feature_identification(pred_feats: np.ndarray, true_feats: np.ndarray) -> np.ndarray:
    """Two-way identification in a network's feature space.

    Each reconstruction's features are correlated (Pearson, over all units of
    the layer) with those of its own stimulus and of every other stimulus of
    the set; the score is the fraction of others it beats, as in
    :func:`pairwise_identification`. This is how current benchmarks report
    "AlexNet(2)", "AlexNet(5)", "Inception" and "CLIP" scores.

    Parameters
    ----------
    pred_feats : ndarray, shape (N, ...)
        Features of the reconstructions (any shape per item; flattened).
    true_feats : ndarray, shape (N, ...)
        Features of the stimuli, same layer and order.

    Returns
    -------
    ndarray, shape (N,)
        Accuracy per reconstruction; chance is 0.5.
    """
    return pairwise_identification(pred_feats, true_feats, metric="correlation")


def pixcorr(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Pearson correlation of each reconstruction's pixels with its own stimulus.

    Parameters
    ----------
    pred, true : ndarray, shape (N, H, W, 3) or (N, D)
        Images on the same scale; all channels are flattened together.

    Returns
    -------
    ndarray, shape (N,)
    """
    p = _as_rows(pred, "pred")
    t = _as_rows(true, "true")
    if p.shape != t.shape:
        raise DataError(f"pixcorr: pred has shape {p.shape} and true {t.shape}; expected equal")
    p = p - p.mean(axis=1, keepdims=True)
    t = t - t.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("nd,nd->n", p, t) / np.sqrt(
            np.einsum("nd,nd->n", p, p) * np.einsum("nd,nd->n", t, t)
        )


def ssim_scores(
    pred: np.ndarray, true: np.ndarray, data_range: float = 255.0, greyscale: bool = True
) -> np.ndarray:
    """Structural similarity of each reconstruction with its stimulus.

    Settings of current benchmarks: images scaled to 0-1 by ``data_range``,
    converted to greyscale with :func:`skimage.color.rgb2gray` (ITU-R 709
    luma), then :func:`skimage.metrics.structural_similarity` with a Gaussian
    window (sigma 1.5), population covariance and ``data_range=1``. With
    ``greyscale=False`` the same is computed per RGB channel and averaged.

    Parameters
    ----------
    pred, true : ndarray, shape (N, H, W, 3)
        RGB images on a 0-``data_range`` scale (values outside are clipped).
    data_range : float
        Full scale of the inputs (255 for 8-bit-like images).
    greyscale : bool
        Compare luma (default, as benchmarks do) or all three channels.

    Returns
    -------
    ndarray, shape (N,)
    """
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 4 or pred.shape[-1] != 3:
        raise DataError(
            f"ssim: pred has shape {pred.shape} and true {true.shape}; "
            "expected equal shapes (N, H, W, 3)"
        )
    scores = np.empty(pred.shape[0])
    for i, (p, t) in enumerate(zip(pred, true, strict=True)):
        p = np.clip(p / data_range, 0.0, 1.0)  # (H, W, 3)
        t = np.clip(t / data_range, 0.0, 1.0)
        if greyscale:
            p, t = rgb2gray(p), rgb2gray(t)  # (H, W)
        scores[i] = structural_similarity(
            p,
            t,
            channel_axis=None if greyscale else -1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
        )
    return scores


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, ci: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling images with replacement.

    Parameters
    ----------
    values : ndarray, shape (N,)
        One score per image; NaN entries are left out.
    n_boot : int
        Number of resamples.
    ci : float
        Coverage, e.g. 0.95 for the 2.5 and 97.5 percentiles.
    seed : int
        Seed of the NumPy generator; the same seed gives the same interval.

    Returns
    -------
    (float, float)
        Lower and upper bound; ``(nan, nan)`` when no finite value is left.
    """
    if not 0.0 < ci < 1.0:
        raise DataError(f"bootstrap_ci: ci={ci} is not in (0, 1); use e.g. 0.95")
    if n_boot < 1:
        raise DataError(f"bootstrap_ci: n_boot={n_boot}; expected at least 1")
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)  # (n_boot,)
    tail = (1.0 - ci) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def json_number(value: float) -> float | None:
    """A score as written to JSON: rounded to 6 decimals, None when NaN or infinite."""
    return None if not np.isfinite(float(value)) else round(float(value), 6)


def resize_images(images: np.ndarray, size_px: int) -> np.ndarray:
    """Resize a batch of square images (bicubic, antialiased when shrinking).

    Parameters
    ----------
    images : ndarray, shape (N, H, W, C)
    size_px : int
        Output height and width.

    Returns
    -------
    ndarray, shape (N, size_px, size_px, C), float32, not clipped
    """
    x = np.asarray(images, dtype=np.float32)
    if x.shape[1:3] == (size_px, size_px):
        return x.copy()
    tensor = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)  # (N, C, H, W)
    shrink = size_px < max(x.shape[1:3])
    out = F.interpolate(
        tensor, size=(size_px, size_px), mode="bicubic", align_corners=False, antialias=shrink
    )  # (N, C, size, size)
    return out.permute(0, 2, 3, 1).contiguous().numpy()
