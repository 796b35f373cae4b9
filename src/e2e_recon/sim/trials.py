"""Trials of the simulated experiment: run schedule, noise and drift.

A sample is one stimulus block, as in the real files. Every repetition presents all
images of a set once, in a new random order, split into runs of at most 50 images
(the experiment's run length); runs are grouped into sessions. One trial's value is

    baseline * (1 + 0.01 * (snr * gain * signal + noise_sd * noise + drift + global))

i.e. percent signal change on a voxel-specific baseline. ``signal`` has unit SD over
the training images for a typical voxel of its area, ``noise`` is unit-variance
Gaussian noise, half of it local (smoothed over neighbouring voxels of the cortical
grid) and half shared across the cortex through 20 smooth latent factors, ``drift`` a slow
per-run trend (offset, linear, half-cosine) plus a per-session offset, and ``global`` a
per-trial fluctuation shared by all voxels. ``snr`` is therefore the single-trial
ratio of stimulus-driven SD to noise SD for a voxel of median gain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import convolve, gaussian_filter

from e2e_recon.sim.brain import AREAS, BrainModel

__all__ = ["Schedule", "make_schedule", "signal_from_drive", "simulate_trials"]

IMAGES_PER_RUN = 50
NOISE_SMOOTHING_VOXELS = 1.0
#: Share of the trial-noise variance that is shared across the cortex through a few
#: spatially smooth latent factors (physiological and other widespread fluctuations):
#: it makes averaging over many voxels less effective, as in real fMRI.
SHARED_NOISE_VARIANCE = 0.5
N_NOISE_FACTORS = 20
FACTOR_SMOOTHING_VOXELS = 4.0
RUN_DRIFT_SD = (0.3, 0.3, 0.2)  # offset, linear trend, half-cosine (percent signal change)
SESSION_OFFSET_SD = 0.3
GLOBAL_SD = 0.3


@dataclass
class Schedule:
    """Order of the trials of one session type; all arrays (T,)."""

    image_index: np.ndarray  # row into the stimulus set
    run: np.ndarray  # 1-based, unique over the whole set
    session: np.ndarray  # 1-based
    position: np.ndarray  # 0-based trial position within its run

    @property
    def n_trials(self) -> int:
        """Number of trials (samples)."""
        return len(self.image_index)


def make_schedule(
    n_images: int, n_repetitions: int, rng: np.random.Generator, runs_per_session: int = 8
) -> Schedule:
    """Each repetition shows every image once in a new random order, in runs of <= 50.

    Parameters
    ----------
    n_images, n_repetitions : int
    rng : numpy Generator
    runs_per_session : int

    Returns
    -------
    Schedule
    """
    runs_per_repetition = int(np.ceil(n_images / IMAGES_PER_RUN))
    image_index, run, position = [], [], []
    for repetition in range(n_repetitions):
        order = rng.permutation(n_images)
        for r, chunk in enumerate(np.array_split(order, runs_per_repetition)):
            image_index.append(chunk)
            run.append(np.full(len(chunk), repetition * runs_per_repetition + r + 1))
            position.append(np.arange(len(chunk)))
    runs = np.concatenate(run)
    return Schedule(
        image_index=np.concatenate(image_index),
        run=runs,
        session=(runs - 1) // runs_per_session + 1,
        position=np.concatenate(position),
    )


def signal_from_drive(drive: np.ndarray, reference: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Centre each voxel on its reference (training) mean and scale by its area's typical SD.

    One scale per area, not per voxel: a voxel whose receptive field lies mostly off the
    display keeps its weak signal instead of being blown up to unit variance.

    Parameters
    ----------
    drive : ndarray, shape (M, V)
    reference : ndarray, shape (N_ref, V)
    area : ndarray, shape (V,) int

    Returns
    -------
    ndarray, shape (M, V), float32
    """
    mean = reference.mean(axis=0)
    sd = reference.std(axis=0)
    scale = np.ones_like(mean)
    for index in range(len(AREAS)):
        sel = area == index
        if sel.any():
            scale[sel] = max(float(np.median(sd[sel])), 1e-12)
    return ((drive - mean) / scale).astype(np.float32)


def _smoothing_sd(shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """SD, at each grid point, of white unit noise after zero-padded Gaussian smoothing
    (lower near the edges of a grid, where fewer neighbours contribute)."""
    size = 2 * int(4 * sigma + 0.5) + 1
    impulse = np.zeros((size, size, size))
    impulse[size // 2, size // 2, size // 2] = 1.0
    kernel = gaussian_filter(impulse, sigma=(sigma, sigma, sigma / 2), mode="constant")
    variance = convolve(np.ones(shape), kernel**2, mode="constant")
    return np.sqrt(variance).astype(np.float32)


def spatial_noise(
    brain: BrainModel,
    n_trials: int,
    rng: np.random.Generator,
    sigma: float = NOISE_SMOOTHING_VOXELS,
) -> np.ndarray:
    """Unit-variance Gaussian noise correlated between grid neighbours: (T, V) float32."""
    noise = np.empty((n_trials, brain.n_voxels), dtype=np.float32)
    for b, shape in enumerate(brain.blocks):
        members = np.flatnonzero(brain.block == b)
        white = rng.standard_normal((n_trials, *shape), dtype=np.float32)
        smooth = gaussian_filter(white, sigma=(0, sigma, sigma, sigma / 2), mode="constant")
        smooth /= _smoothing_sd(shape, sigma)
        iu, iv, iz = brain.grid[members].T
        noise[:, members] = smooth[:, iu, iv, iz]
    return noise


def trial_noise(brain: BrainModel, n_trials: int, rng: np.random.Generator) -> np.ndarray:
    """Local (neighbour-correlated) plus shared (latent-factor) noise, unit variance:
    (T, V) float32."""
    local = spatial_noise(brain, n_trials, rng)
    loadings = spatial_noise(brain, N_NOISE_FACTORS, rng, FACTOR_SMOOTHING_VOXELS)  # (K, V)
    factors = rng.standard_normal((n_trials, N_NOISE_FACTORS), dtype=np.float32)
    shared = factors @ loadings / np.float32(np.sqrt(N_NOISE_FACTORS))
    local *= np.float32(np.sqrt(1.0 - SHARED_NOISE_VARIANCE))
    local += np.float32(np.sqrt(SHARED_NOISE_VARIANCE)) * shared
    return local


def _drift(brain: BrainModel, schedule: Schedule, rng: np.random.Generator) -> np.ndarray:
    """Slow per-run drift plus per-session offsets: (T, V) float32."""
    n_voxels = brain.n_voxels
    drift = np.empty((schedule.n_trials, n_voxels), dtype=np.float32)
    sessions = {
        s: rng.normal(0.0, SESSION_OFFSET_SD, n_voxels) for s in np.unique(schedule.session)
    }
    for run in np.unique(schedule.run):
        rows = np.flatnonzero(schedule.run == run)
        t = schedule.position[rows] / max(len(rows) - 1, 1)  # 0..1 through the run
        basis = np.stack([np.ones_like(t), t - 0.5, np.cos(np.pi * t)], axis=1)  # (n, 3)
        coefs = rng.normal(0.0, 1.0, (3, n_voxels)) * np.asarray(RUN_DRIFT_SD)[:, None]
        session = sessions[int(schedule.session[rows[0]])]
        drift[rows] = basis @ coefs + session
    return drift


def simulate_trials(
    signal: np.ndarray,
    schedule: Schedule,
    brain: BrainModel,
    snr: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Voxel values of every trial.

    Parameters
    ----------
    signal : ndarray, shape (M, V)
        Noiseless standardised responses to the M images of the set.
    schedule : Schedule
    brain : BrainModel
    snr : float
        Single-trial signal-to-noise ratio (SD ratio) of a voxel of median gain.
    rng : numpy Generator
        Noise stream; its draws do not depend on ``snr``, so two SNRs differ only in scale.

    Returns
    -------
    ndarray, shape (T, V), float64
    """
    noise = trial_noise(brain, schedule.n_trials, rng)
    noise *= brain.noise_sd.astype(np.float32)
    noise += _drift(brain, schedule, rng)
    loading = rng.uniform(0.5, 1.5, brain.n_voxels).astype(np.float32)
    noise += np.outer(rng.normal(0.0, GLOBAL_SD, schedule.n_trials), loading).astype(np.float32)
    noise += signal[schedule.image_index] * (snr * brain.gain).astype(np.float32)
    values = noise.astype(np.float64)  # in place from here on: the paper preset is large
    del noise
    values *= 0.01
    values += 1.0
    values *= brain.baseline
    return values
