"""Voxel selection: the images' prediction of each voxel, the cross-validated fraction, and
the statistics that carry the kept voxels to test time."""

from __future__ import annotations

import numpy as np
import pytest

from e2e_recon.data.dataset import NormStats, TrainingSet, average_by_stimulus
from e2e_recon.errors import ConfigError
from e2e_recon.recon.voxel_selection import (
    check_selection,
    cross_validated_fraction,
    pooled_pixels,
    select_voxels,
    selected_norm,
    voxel_scores,
)


def _experiment(
    n_images: int, n_voxels: int, informative: int, seed: int = 0, noise: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random 16 px images of 2 x 2 colour blocks (12 numbers each) shown twice; the first
    ``informative`` voxels respond to their pixels (a random linear read-out), the others
    are noise only."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(n_images, 2, 2, 3))
    crops = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2).astype(np.uint8)  # (M, 16, 16, 3)
    pixels = pooled_pixels(crops)
    pixels = (pixels - pixels.mean(0)) / pixels.std()
    signal = pixels @ rng.normal(size=(pixels.shape[1], informative)) / np.sqrt(pixels.shape[1])
    signal /= signal.std(axis=0)
    index = np.repeat(np.arange(n_images), 2)  # (N,)
    voxels = noise * rng.normal(size=(len(index), n_voxels))
    voxels[:, :informative] += signal[index]
    return voxels, index, crops


def test_the_voxels_the_images_drive_score_first() -> None:
    voxels, index, crops = _experiment(80, 200, 20)
    means, _, shown = average_by_stimulus(voxels, index)
    np.testing.assert_array_equal(shown, np.arange(80))
    np.testing.assert_allclose(means[3], voxels[index == 3].mean(axis=0))
    scores = voxel_scores(means, pooled_pixels(crops)[shown])
    assert scores.shape == (200,)
    assert scores[:20].min() > scores[20:].max()  # every informative voxel ranks first
    assert scores[:20].mean() > 0.3 and scores[20:].mean() < 0  # held out: none for noise


@pytest.mark.parametrize(("informative", "expected"), [(12, (0.06, 0.12)), (200, (1.0,))])
def test_cross_validation_keeps_few_voxels_only_when_few_carry_the_images(
    informative: int, expected: tuple[float, ...]
) -> None:
    voxels, index, crops = _experiment(80, 200, informative, noise=1.5)
    fraction, scores = cross_validated_fraction(voxels, index, crops, pooled_pixels(crops), 0)
    assert fraction in expected, scores
    assert set(scores) == {0.06, 0.12, 0.25, 0.5, 1.0}
    assert max(scores.values()) > 0.7  # the kept voxels decode held-out images


def test_noise_alone_keeps_every_voxel() -> None:
    """No fraction is better by more than its standard error: nothing is dropped."""
    voxels, index, crops = _experiment(40, 200, 0)
    fraction, scores = cross_validated_fraction(voxels, index, crops, pooled_pixels(crops), 0)
    assert fraction == 1.0 and max(scores.values()) < 0.65, scores


def test_selected_statistics_compose_with_a_non_finite_drop() -> None:
    mean, std = np.arange(4, dtype=np.float32), np.ones(4, dtype=np.float32)
    xyz = np.arange(12, dtype=np.float64).reshape(4, 3)
    dropped = np.array([True, False, True, True, True])  # ROI column 1 held NaN
    norm = NormStats(mean, std, "ROI_VC = 1", kept_columns=dropped, voxel_xyz=xyz)
    keep = np.array([False, True, False, True])  # of the 4 remaining columns
    chosen = selected_norm(norm, keep)
    np.testing.assert_array_equal(chosen.kept_columns, [False, False, True, False, True])
    np.testing.assert_array_equal(chosen.mean, [1, 3])
    np.testing.assert_array_equal(chosen.voxel_xyz, xyz[[1, 3]])
    plain = selected_norm(NormStats(mean, std, "ROI_VC = 1"), keep)
    np.testing.assert_array_equal(plain.kept_columns, keep)


@pytest.mark.parametrize(
    ("selection", "fraction", "message"),
    [("best", 0.0, "data.voxel_selection='best'"), ("image-r2", 1.5, "data.voxel_fraction=1.5")],
)
def test_a_selection_that_cannot_run_names_its_key(
    selection: str, fraction: float, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        check_selection(selection, fraction)
    check_selection("image-r2", 0.25)


def test_too_few_images_keep_every_voxel_and_say_so() -> None:
    voxels, index, crops = _experiment(8, 50, 5)
    norm = NormStats(np.zeros(50), np.ones(50), "ROI_VC = 1")
    names = [str(i) for i in range(8)]
    training = TrainingSet(voxels.astype(np.float32), index, crops, np.arange(8.0), names, norm)
    kept, note = select_voxels(training, 16, 0.0, 0)
    assert kept is training and "8 training images are too few" in note
