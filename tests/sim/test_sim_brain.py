"""Encoding model and trials of the simulated subject."""

from __future__ import annotations

import numpy as np
import pytest

from e2e_recon.sim.brain import build_brain, roi_masks
from e2e_recon.sim.features import compute_features
from e2e_recon.sim.stimuli import artificial_shapes, natural_images
from e2e_recon.sim.trials import make_schedule, signal_from_drive, simulate_trials


@pytest.fixture(scope="module")
def model():
    images = natural_images("training", 24, 32, np.random.default_rng(0)).images
    features = compute_features(images)
    brain = build_brain(300, features.mid_level.shape[1], np.random.default_rng(0))
    brain.fit_scales(features)
    drive = brain.responses(features)
    return brain, images, drive


def test_roi_subsets_are_nested(model) -> None:
    brain, _, _ = model
    masks = roi_masks(brain)
    assert not (masks["ROI_V1"] & ~masks["ROI_LVC"]).any()
    assert not (masks["ROI_LVC"] & ~masks["ROI_VC"]).any()
    assert not (masks["ROI_HVC"] & masks["ROI_LVC"]).any()
    parts = ["ROI_V1", "ROI_V2", "ROI_V3", "ROI_hV4", "ROI_HVC"]
    assert sum(int(masks[p].sum()) for p in parts) == brain.n_voxels == 300
    assert len(np.unique(brain.xyz_mm, axis=0)) == brain.n_voxels  # one voxel per position


def test_noiseless_responses_depend_on_the_image(model) -> None:
    brain, images, drive = model
    assert drive.shape == (24, 300) and np.isfinite(drive).all()
    again = brain.responses(compute_features(images[:2]))
    np.testing.assert_allclose(again, drive[:2], rtol=1e-5, atol=1e-6)
    corr = np.corrcoef(drive - drive.mean(axis=0))
    off_diagonal = corr[~np.eye(24, dtype=bool)]
    # Different images, different patterns: no two alike, most pairs far apart (two
    # crops of one photograph with similar luminance may correlate highly).
    assert off_diagonal.max() < 0.98
    assert np.median(np.abs(off_diagonal)) < 0.4


def test_receptive_fields_are_retinotopic(model) -> None:
    brain, _, _ = model
    grey = np.full((2, 32, 32, 3), 128, dtype=np.uint8)
    grey[0, 2:14, 18:30] = np.where((np.arange(12) // 2 % 2)[None, :, None], 255, 0)  # top right
    grey[1, 18:30, 2:14] = np.where((np.arange(12) // 2 % 2)[None, :, None], 255, 0)  # bottom left
    drive = brain.responses(compute_features(grey))
    v1 = (brain.area == 0) & (np.hypot(*brain.prf_xy_deg.T) < 5)
    upper_right = v1 & (brain.prf_xy_deg[:, 0] > 1.5) & (brain.prf_xy_deg[:, 1] > 1.5)
    lower_left = v1 & (brain.prf_xy_deg[:, 0] < -1.5) & (brain.prf_xy_deg[:, 1] < -1.5)
    assert upper_right.any() and lower_left.any()
    assert (drive[0, upper_right] > drive[1, upper_right]).mean() > 0.9
    assert (drive[1, lower_left] > drive[0, lower_left]).mean() > 0.9


def _snr_estimate(values, brain, schedule, n_images):
    """Between-image SD of the image means over within-image SD, median over voxels."""
    pct = (values / brain.baseline - 1.0) * 100.0
    means = np.stack([pct[schedule.image_index == i].mean(axis=0) for i in range(n_images)])
    within = pct - means[schedule.image_index]
    return means, within.std(axis=0)


def test_noise_level_follows_snr(model) -> None:
    brain, _, drive = model
    signal = signal_from_drive(drive, drive, brain.area)
    schedule = make_schedule(24, 6, np.random.default_rng(1))
    runs = {
        snr: simulate_trials(signal, schedule, brain, snr, np.random.default_rng(2))
        for snr in (0.5, 2.0)
    }
    means_low, noise_low = _snr_estimate(runs[0.5], brain, schedule, 24)
    means_high, noise_high = _snr_estimate(runs[2.0], brain, schedule, 24)
    np.testing.assert_allclose(noise_low, noise_high, rtol=1e-6)  # same noise draws
    ratio = np.median(means_high.std(axis=0)) / np.median(means_low.std(axis=0))
    assert 2.5 < ratio < 4.5  # signal SD scales with snr (x4), diluted by averaged noise
    pct = (runs[2.0] / brain.baseline - 1.0) * 100.0
    residual = pct - 2.0 * brain.gain * signal[schedule.image_index]
    np.testing.assert_allclose(
        residual,
        (runs[0.5] / brain.baseline - 1.0) * 100.0
        - 0.5 * brain.gain * signal[schedule.image_index],
        atol=1e-4,
    )


def test_noise_is_correlated_between_neighbouring_voxels(model) -> None:
    brain, _, _ = model
    from e2e_recon.sim.trials import spatial_noise

    noise = spatial_noise(brain, 400, np.random.default_rng(0))
    corr = np.corrcoef(noise.T)
    distance = np.linalg.norm(brain.xyz_mm[:, None] - brain.xyz_mm[None], axis=2)
    assert 0.2 < corr[distance == 2].mean() < 0.9
    assert abs(corr[distance > 20].mean()) < 0.05
    assert 0.9 < noise.std(axis=0).mean() < 1.1


def test_schedule_runs_and_sessions() -> None:
    schedule = make_schedule(120, 3, np.random.default_rng(0), runs_per_session=4)
    assert schedule.n_trials == 360
    assert np.bincount(schedule.image_index).tolist() == [3] * 120
    assert schedule.run.max() == 9 and np.bincount(schedule.run)[1:].max() <= 50
    assert schedule.session.max() == 3


def test_shapes_drive_hvc_differently(model) -> None:
    brain, _, _ = model
    shapes = artificial_shapes(32)
    drive = brain.responses(compute_features(shapes.images))
    hvc = brain.area == 4
    assert np.ptp(drive[:, hvc], axis=0).mean() > 0


def test_other_seed_other_brain_and_noise(model) -> None:
    brain, _, drive = model
    other = build_brain(300, brain.mid_weights.shape[1], np.random.default_rng(1))
    assert not np.array_equal(other.prf_xy_deg, brain.prf_xy_deg)
    signal = signal_from_drive(drive, drive, brain.area)
    schedule = make_schedule(24, 2, np.random.default_rng(1))
    a = simulate_trials(signal, schedule, brain, 1.0, np.random.default_rng(5))
    b = simulate_trials(signal, schedule, brain, 1.0, np.random.default_rng(5))
    c = simulate_trials(signal, schedule, brain, 1.0, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
