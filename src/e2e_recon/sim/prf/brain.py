"""Encoding model of the pRF simulator family: population receptive fields over features.

Each image becomes feature maps (luminance, the colour-opponent maps R-G and B-Y, and
contrast energy from quadrature Gabor pairs at 4 orientations and 2 scales). Each voxel
pools them with a Gaussian population receptive field whose size grows with
eccentricity and with the visual area, weights the pooled features, compresses the
summed drive (signed power :data:`EXPONENT`) and applies its gain and offset. Trial
noise is Gaussian, partly shared across voxels (low rank).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import zoom
from scipy.signal import fftconvolve

EXPONENT = 0.5  # compressive nonlinearity on the summed drive (Kay et al. 2013 report ~0.2-0.5)
NOISE_FACTORS = 8  # rank of the noise shared across voxels
N_FEATURES = 11  # luminance, R-G, B-Y, energy at 4 orientations x 2 scales

# Visual areas: (ROI name, share of voxels, pRF sigma at the fovea and its growth per unit
# eccentricity (image widths), weight of colour, weight of contrast energy).
AREAS = (
    ("V1", 0.30, 0.015, 0.08, 0.5, 0.6),
    ("V2", 0.22, 0.025, 0.12, 0.5, 0.8),
    ("V3", 0.16, 0.035, 0.18, 0.6, 1.0),
    ("hV4", 0.14, 0.05, 0.25, 1.2, 1.0),
    ("HVC", 0.13, 0.10, 0.35, 0.8, 1.5),
)
OUTSIDE_VC = 0.05  # share of voxels outside visual cortex (no signal)


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in image widths, centred on 0: x, y each (S, S)."""
    c = (np.arange(size) + 0.5) / size - 0.5
    return np.meshgrid(c, c)


def feature_maps(images: np.ndarray, grid_px: int) -> np.ndarray:
    """Luminance, R-G, B-Y and 8 contrast-energy maps on a grid: (n, 11, G, G) float32."""
    n, size = images.shape[0], images.shape[1]
    r, g, b = images[..., 0], images[..., 1], images[..., 2]
    lum = 0.299 * r + 0.587 * g + 0.114 * b  # (n, S, S)
    maps = [lum - 0.5, r - g, b - (r + g) / 2]
    x, y = grid(size)
    x, y = x * size, y * size  # pixels
    for period in (size / 16, size / 6):  # two spatial scales, in pixels
        sigma = 0.5 * period
        envelope = np.exp(-(x**2 + y**2) / (2 * sigma**2))
        half = int(min(size // 2, np.ceil(3 * sigma)))
        crop = slice(size // 2 - half, size // 2 + half + 1)
        for theta in np.arange(4) * np.pi / 4:
            u = x * np.cos(theta) + y * np.sin(theta)
            even = (envelope * np.cos(2 * np.pi * u / period))[crop, crop]
            odd = (envelope * np.sin(2 * np.pi * u / period))[crop, crop]
            even -= even.mean()  # no response to uniform luminance
            resp_e = fftconvolve(lum, even[None], mode="same")
            resp_o = fftconvolve(lum, odd[None], mode="same")
            maps.append(np.sqrt(resp_e**2 + resp_o**2) / envelope.sum())
    stack = np.stack(maps, axis=1)  # (n, 11, S, S)
    if grid_px != size:
        stack = zoom(stack, (1, 1, grid_px / size, grid_px / size), order=1)
    return stack.astype(np.float32).reshape(n, len(maps), grid_px, grid_px)


@dataclass
class Brain:
    """Encoding parameters of every voxel (V voxels, C features, G x G grid)."""

    area: np.ndarray  # (V,) index into AREAS, -1 = outside visual cortex
    centre: np.ndarray  # (V, 2) x, y in image widths from the centre
    sigma: np.ndarray  # (V,) pRF SD in image widths
    weights: np.ndarray  # (V, C) feature weights
    gain: np.ndarray  # (V,) signal gain (per-voxel SNR = snr * gain)
    offset: np.ndarray  # (V,) baseline signal, arbitrary units
    scale: np.ndarray  # (V,) signal change per unit, arbitrary units
    loadings: np.ndarray  # (K, V) shared-noise loadings, unit norm per voxel
    feature_sd: np.ndarray  # (C,) feature normalisation, from the training images
    mean: np.ndarray  # (V,) response mean over training images
    sd: np.ndarray  # (V,) response SD over training images


def build_brain(n_voxels: int, rng: np.random.Generator) -> Brain:
    """Random areas, pRFs (size growing with eccentricity), feature tuning, gains."""
    shares = np.array([a[1] for a in AREAS] + [OUTSIDE_VC])
    area = rng.choice(np.arange(-1, len(AREAS)), size=n_voxels, p=np.roll(shares, 1) / shares.sum())
    area = np.sort(area)[::-1].copy()
    ecc = 0.6 * rng.random(n_voxels) ** 1.5  # more voxels near the fovea
    polar = rng.uniform(0, 2 * np.pi, n_voxels)
    centre = np.clip(np.stack([ecc * np.cos(polar), ecc * np.sin(polar)], 1), -0.5, 0.5)
    params = np.array([a[2:] for a in AREAS] + [(0.1, 0.3, 0.0, 0.0)])[area]  # -1 = last row
    sigma = (params[:, 0] + params[:, 1] * ecc) * rng.lognormal(0, 0.2, n_voxels)
    # Features: luminance (signed), two colour-opponent maps, energy tuned to one
    # scale and one orientation (von Mises over the 4 orientations).
    weights = np.zeros((n_voxels, N_FEATURES))
    weights[:, 0] = rng.normal(0, 1, n_voxels)
    weights[:, 1:3] = rng.normal(0, 1, (n_voxels, 2)) * params[:, 2:3]
    preferred, kappa = rng.integers(4, size=n_voxels), rng.uniform(0.5, 3, n_voxels)
    tuning = np.exp(
        kappa[:, None] * np.cos(2 * (np.arange(4)[None] - preferred[:, None]) * np.pi / 4)
    )
    tuning /= tuning.sum(axis=1, keepdims=True)
    scale_pick = rng.integers(2, size=n_voxels)
    for s in range(2):
        weights[:, 3 + 4 * s : 7 + 4 * s] = np.where(scale_pick[:, None] == s, tuning, 0.2 * tuning)
    weights[:, 3:] *= (params[:, 3] * rng.uniform(0.5, 1.5, n_voxels))[:, None]
    loadings = rng.normal(size=(NOISE_FACTORS, n_voxels))
    loadings /= np.linalg.norm(loadings, axis=0, keepdims=True)
    return Brain(
        area=area,
        centre=centre,
        sigma=sigma,
        weights=weights,
        gain=np.where(area >= 0, rng.lognormal(0, 0.5, n_voxels), 0.0),
        offset=rng.uniform(500, 1500, n_voxels),
        scale=rng.uniform(5, 20, n_voxels),
        loadings=loadings,
        feature_sd=np.ones(N_FEATURES),
        mean=np.zeros(n_voxels),
        sd=np.ones(n_voxels),
    )


def prf_matrix(brain: Brain, grid_px: int) -> np.ndarray:
    """Gaussian pRFs sampled on the grid, each summing to 1: (V, G*G) float32."""
    x, y = grid(grid_px)
    d2 = (x.ravel()[None] - brain.centre[:, :1]) ** 2 + (y.ravel()[None] - brain.centre[:, 1:]) ** 2
    rf = np.exp(-d2 / (2 * brain.sigma[:, None] ** 2))
    return (rf / np.maximum(rf.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)


def responses(brain: Brain, features: np.ndarray, prf: np.ndarray) -> np.ndarray:
    """Compressed drive of each voxel to each image: (n, V) float64, not standardised."""
    n, c = features.shape[:2]
    flat = (features / brain.feature_sd[None, :, None, None]).reshape(n * c, -1)  # (n*C, G*G)
    pooled = (flat.astype(np.float32) @ prf.T).reshape(n, c, -1)  # (n, C, V)
    drive = np.einsum("ncv,vc->nv", pooled.astype(np.float64), brain.weights)  # (n, V)
    return np.sign(drive) * np.abs(drive) ** EXPONENT


def trials(
    signal: np.ndarray,
    order: np.ndarray,
    brain: Brain,
    snr: float,
    shared_noise: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Voxel values of each trial (T, V): offset + scale * (gain * signal + noise).

    The noise has variance ``1 / snr**2``, of which the share ``shared_noise`` is common
    to many voxels (rank :data:`NOISE_FACTORS`): it does not average out across voxels.
    """
    t, v = len(order), signal.shape[1]
    shared = rng.normal(size=(t, NOISE_FACTORS)) @ brain.loadings  # (T, V), unit variance
    own = rng.normal(size=(t, v))  # (T, V)
    noise = (np.sqrt(1 - shared_noise) * own + np.sqrt(shared_noise) * shared) / snr
    return brain.offset + brain.scale * (brain.gain * signal[order] + noise)
