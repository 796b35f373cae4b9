"""Known answers of the suites' identification and distance functions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.spatial.distance import correlation as scipy_correlation

from e2e_recon.evaluate import identification as ident
from e2e_recon.evaluate.metrics import pairwise_identification


def bdpy_pairwise_identification(pred: np.ndarray, true: np.ndarray, metric: str) -> np.ndarray:
    """bdpy's definition, written as bdpy writes it (bdpy/evals/metrics.py):
    similarity 1 - cdist, the own pair's similarity subtracted, count of negatives
    over the number of other candidates."""
    sim = 1.0 - cdist(pred, true, metric=metric)
    diff = sim - np.diag(sim)[:, None]
    return (diff < 0).sum(axis=1) / (len(true) - 1)


def mindeye_two_way(pred: np.ndarray, true: np.ndarray) -> float:
    """The NSD benchmark's two_way_identification (MindEye, Reconstruction_Metrics.py)."""
    r = np.corrcoef(true, pred)[: len(true), len(true) :]
    congruents = np.diag(r)
    success = r < congruents
    return float(np.mean(success.sum(axis=0)) / (len(true) - 1))


def brute_force_similarity(pred: np.ndarray, cand: np.ndarray, metric: str) -> np.ndarray:
    out = np.empty((len(pred), len(cand)))
    for i, j in itertools.product(range(len(pred)), range(len(cand))):
        if metric == "correlation":
            out[i, j] = np.corrcoef(pred[i], cand[j])[0, 1]
        else:
            out[i, j] = -np.sqrt(((pred[i] - cand[j]) ** 2).sum())
    return out


@pytest.fixture
def features() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    true = rng.normal(size=(9, 40)).astype(np.float32)
    pred = (true + rng.normal(scale=2.5, size=true.shape) + 3.0).astype(np.float32)
    return pred, true


@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
def test_similarity_matrix_matches_brute_force(
    features: tuple[np.ndarray, np.ndarray], metric: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pred, true = features
    expected = brute_force_similarity(pred.astype(np.float64), true.astype(np.float64), metric)
    monkeypatch.setattr(ident, "CHUNK_COLUMNS", 7)  # many chunks, one ragged
    assert np.allclose(ident.similarity_matrix(pred, true, metric), expected, atol=1e-9)


@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
def test_pairwise_equals_bdpy_style_function(
    features: tuple[np.ndarray, np.ndarray], metric: str
) -> None:
    pred, true = features
    got = ident.pairwise_from_similarity(ident.similarity_matrix(pred, true, metric))
    p64, t64 = pred.astype(np.float64), true.astype(np.float64)
    assert np.allclose(got, bdpy_pairwise_identification(p64, t64, metric))
    assert np.allclose(got, pairwise_identification(p64, t64, metric=metric))
    assert 0.0 < got.mean() < 1.0


def test_two_way_equals_the_nsd_benchmark_function(
    features: tuple[np.ndarray, np.ndarray],
) -> None:
    pred, true = features
    got = ident.pairwise_from_similarity(ident.similarity_matrix(pred, true)).mean()
    assert got == pytest.approx(mindeye_two_way(pred.astype(np.float64), true.astype(np.float64)))


def test_ties_fail_and_a_nan_target_scores_zero() -> None:
    sim = np.array([[1.0, 1.0, 0.0], [0.2, 0.5, 0.1], [0.3, 0.3, np.nan]])
    got = ident.pairwise_from_similarity(sim)
    assert got[0] == 0.5  # the tie with candidate 1 fails, candidate 2 is beaten
    assert got[1] == 1.0
    assert got[2] == 0.0


def brute_force_nway(own: np.ndarray, others: np.ndarray, n: int) -> np.ndarray:
    """Every draw of n - 1 distractors, one by one."""
    scores = []
    for i in range(len(own)):
        draws = list(itertools.combinations(range(others.shape[1]), n - 1))
        wins = [all(others[i, j] < own[i] for j in draw) for draw in draws]
        scores.append(np.mean(wins))
    return np.asarray(scores)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_nway_is_the_exact_mean_over_draws(n: int) -> None:
    rng = np.random.default_rng(n)
    own = rng.normal(size=6)
    others = rng.normal(size=(6, 7))
    others[0, 0] = own[0]  # a tie counts as a loss
    expected = brute_force_nway(own, others, n)
    assert np.allclose(ident.nway_identification(own, others, n), expected)


def test_two_way_against_the_other_stimuli_is_pairwise_identification(
    features: tuple[np.ndarray, np.ndarray],
) -> None:
    pred, true = features
    sim = ident.similarity_matrix(pred, true)
    n = len(sim)
    others = sim[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    two_way = ident.nway_identification(np.diag(sim), others, 2)
    assert np.allclose(two_way, ident.pairwise_from_similarity(sim))


def test_nway_without_enough_distractors_is_nan() -> None:
    got = ident.nway_identification(np.array([1.0, 1.0]), np.array([[0.0, np.nan], [0.0, 0.5]]), 3)
    assert np.isnan(got[0]) and got[1] == 1.0


def test_correlation_distance_is_scipys(features: tuple[np.ndarray, np.ndarray]) -> None:
    pred, true = features
    expected = [scipy_correlation(t, p) for p, t in zip(pred, true, strict=True)]
    assert np.allclose(ident.correlation_distance(pred, true), expected)
