"""Identification and distance on features, vectorised for large layers.

- :func:`similarity_matrix`: Pearson correlation or negative Euclidean distance
  of every prediction with every candidate, accumulated over chunks of columns
  in float64, so a 3-million-unit layer never needs a float64 copy.
- :func:`pairwise_from_similarity`: two-way identification, bdpy's definition
  (``bdpy.evals.metrics.pairwise_identification``): the fraction of other
  candidates whose similarity to a prediction is strictly below its own
  target's; ties fail. The NSD benchmark's ``two_way_identification``
  (MedARC-AI/fMRI-reconstruction-NSD, ``src/Reconstruction_Metrics.py``) counts
  ``r < congruent`` over the other stimuli in the same way.
- :func:`nway_identification`: n-way identification against a pool of
  distractors, as the exact mean over every choice of n - 1 distractors.
- :func:`correlation_distance`: 1 - Pearson r of each prediction with its own
  target (``scipy.spatial.distance.correlation``), the NSD benchmark's EffNet-B
  and SwAV scores.
"""

from __future__ import annotations

from math import comb

import numpy as np

from e2e_recon.errors import DataError
from e2e_recon.evaluate.metrics import item_rows, scores_leaving_out_nan

#: Columns per chunk: bounds the float64 working copy to N x CHUNK values.
CHUNK_COLUMNS = 1 << 16
METRICS = ("correlation", "euclidean")


def similarity_matrix(
    pred: np.ndarray, cand: np.ndarray, metric: str = "correlation"
) -> np.ndarray:
    """Similarity of every prediction with every candidate.

    Parameters
    ----------
    pred : ndarray, shape (N, ...)
    cand : ndarray, shape (M, ...)
        Same number of values per row as ``pred``.
    metric : {"correlation", "euclidean"}
        Pearson r, or minus the Euclidean distance (larger = more similar, so the
        ranking is that of bdpy's ``1 - cdist(..., "euclidean")``).

    Returns
    -------
    ndarray, shape (N, M), float64
        NaN where a row is constant (its correlation is undefined).
    """
    if metric not in METRICS:
        raise DataError(f"similarity metric {metric!r}: expected one of {METRICS}")
    p, c = item_rows(pred, "pred"), item_rows(cand, "candidates")
    if p.shape[1] != c.shape[1]:
        raise DataError(
            f"similarity: pred has {p.shape[1]} values per row and candidates {c.shape[1]}"
        )
    n_cols = p.shape[1]
    if metric == "correlation":
        # Two passes: row means first, so the products are of centred values.
        p_mean = _chunked_sum(p) / n_cols  # (N,)
        c_mean = _chunked_sum(c) / n_cols  # (M,)
    else:
        p_mean, c_mean = np.zeros(len(p)), np.zeros(len(c))
    cross = np.zeros((len(p), len(c)))  # (N, M)
    p_sq, c_sq = np.zeros(len(p)), np.zeros(len(c))
    for start in range(0, n_cols, CHUNK_COLUMNS):
        pc = p[:, start : start + CHUNK_COLUMNS].astype(np.float64) - p_mean[:, None]
        cc = c[:, start : start + CHUNK_COLUMNS].astype(np.float64) - c_mean[:, None]
        cross += pc @ cc.T
        p_sq += np.einsum("ij,ij->i", pc, pc)
        c_sq += np.einsum("ij,ij->i", cc, cc)
    if metric == "correlation":
        with np.errstate(invalid="ignore", divide="ignore"):
            return cross / np.sqrt(p_sq[:, None] * c_sq[None, :])
    squared = np.maximum(p_sq[:, None] + c_sq[None, :] - 2.0 * cross, 0.0)
    return -np.sqrt(squared)


def _chunked_sum(x: np.ndarray) -> np.ndarray:
    total = np.zeros(len(x))
    for start in range(0, x.shape[1], CHUNK_COLUMNS):
        total += x[:, start : start + CHUNK_COLUMNS].sum(axis=1, dtype=np.float64)
    return total


def pairwise_from_similarity(similarity: np.ndarray) -> np.ndarray:
    """Two-way identification of each prediction from its square similarity matrix.

    Parameters
    ----------
    similarity : ndarray, shape (N, N)
        ``similarity[i, j]``: prediction i with candidate j; candidate i is its target.

    Returns
    -------
    ndarray, shape (N,)
        Fraction of the other N - 1 candidates strictly less similar than the
        target. As in bdpy (and :func:`e2e_recon.evaluate.metrics.pairwise_identification`)
        NaN comparisons are left out; a NaN target similarity scores 0, and a row
        with nothing left to compare is NaN.
    """
    s = np.asarray(similarity, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] < 2:
        raise DataError(f"pairwise identification needs an N x N matrix, N >= 2; got {s.shape}")
    return scores_leaving_out_nan(s - np.diag(s)[:, None])  # own column 0 (or NaN)


def nway_identification(own: np.ndarray, distractors: np.ndarray, n: int) -> np.ndarray:
    """n-way identification: the target must beat n - 1 distractors drawn from a pool.

    For each prediction the result is the exact mean over all ways of drawing
    n - 1 distinct distractors from its pool: with k of the M distractors strictly
    less similar than the target, the target wins C(k, n-1) of the C(M, n-1) draws.
    Ties and NaN similarities count as failures. Chance is 1 / n.

    Parameters
    ----------
    own : ndarray, shape (N,)
        Similarity of each prediction with its target.
    distractors : ndarray, shape (N, M)
        Similarity of each prediction with each distractor of its pool (NaN entries
        are left out of the pool).
    n : int
        Number of alternatives including the target (2 or more).

    Returns
    -------
    ndarray, shape (N,)
        NaN for a prediction whose pool holds fewer than n - 1 distractors.
    """
    if n < 2:
        raise DataError(f"n-way identification needs n >= 2 (got {n})")
    own = np.asarray(own, dtype=np.float64)
    d = np.asarray(distractors, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != own.shape[0]:
        raise DataError(f"n-way: {own.shape[0]} targets but distractors of shape {d.shape}")
    valid = ~np.isnan(d)
    with np.errstate(invalid="ignore"):
        wins = (d < own[:, None]) & valid
    scores = np.full(own.shape[0], np.nan)
    for i in range(own.shape[0]):
        pool = int(valid[i].sum())
        if pool >= n - 1:
            k = 0 if np.isnan(own[i]) else int(wins[i].sum())
            scores[i] = comb(k, n - 1) / comb(pool, n - 1)
    return scores


def correlation_distance(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """1 - Pearson r of each prediction with its own target (row i with row i).

    Parameters
    ----------
    pred, true : ndarray, shape (N, ...)

    Returns
    -------
    ndarray, shape (N,)
        In [0, 2]; lower is closer.
    """
    p, t = item_rows(pred, "pred"), item_rows(true, "true")
    if p.shape != t.shape:
        raise DataError(f"correlation distance: shapes {p.shape} and {t.shape} differ")
    p = p.astype(np.float64) - p.mean(axis=1, keepdims=True, dtype=np.float64)
    t = t.astype(np.float64) - t.mean(axis=1, keepdims=True, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.einsum("nd,nd->n", p, t) / np.sqrt(
            np.einsum("nd,nd->n", p, p) * np.einsum("nd,nd->n", t, t)
        )
    return 1.0 - r
