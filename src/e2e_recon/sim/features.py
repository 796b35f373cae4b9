"""Image features that drive the simulated voxels.

Early visual areas see local contrast energy (the magnitude of complex log-Gabor
filter outputs at several orientations and spatial frequencies), local luminance and
two colour-opponent signals (red-green, blue-yellow): the inputs of the standard
early-visual encoding models (Kay et al. 2008; Kay et al. 2013).

Higher visual cortex sees nonlinear mid-level features: the rectified, pooled and
normalised outputs of a small convolutional network with FIXED RANDOM weights (a
seeded, untrained network, so it carries no ImageNet knowledge and none of the
networks used elsewhere in the project), plus handcrafted shape and colour
statistics (saturation, hue histogram, corner/junction energy, texture density).

All features are computed on a fixed 64 x 64 model grid spanning the 12 x 12 degree
display, whatever the stored image size, so the brain is the same in every preset.
The opponent channels here are features of the encoding model, not a conversion of
image formats (those live in ``data/images.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "EARLY_GRID_PX",
    "FIELD_DEG",
    "HVC_GRID_PX",
    "MODEL_PX",
    "ORIENTATIONS_RAD",
    "SF_CPD",
    "FeatureMaps",
    "compute_features",
    "describe_features",
]

#: Side of the display in degrees of visual angle (the experiment's 12 x 12 degrees).
FIELD_DEG = 12.0
#: Side of the grid on which features are computed.
MODEL_PX = 64
#: Grid on which energy and colour maps are stored and pooled by early-area pRFs
#: (2 x 2 averages of the model grid: energy envelopes are smooth at this scale).
EARLY_GRID_PX = 32
#: Grid of the higher-visual-cortex feature maps.
HVC_GRID_PX = 16
#: Preferred spatial frequencies of the energy channels (cycles per degree).
SF_CPD: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
#: Preferred orientations of the energy channels (radians).
ORIENTATIONS_RAD: tuple[float, ...] = tuple(np.arange(6) * np.pi / 6)
#: Seed of the random convolutional network of higher visual cortex.
HVC_NET_SEED = 20190101
HVC_NET_CHANNELS = (24, 32, 32)
N_HANDCRAFTED = 10


@dataclass
class FeatureMaps:
    """Feature maps of a batch of images.

    Attributes
    ----------
    energy : ndarray, shape (N, n_sf, n_ori, EARLY_GRID_PX, EARLY_GRID_PX), float32
        Local contrast energy per spatial frequency and orientation.
    colour : ndarray, shape (N, 3, EARLY_GRID_PX, EARLY_GRID_PX), float32
        Luminance, red-green and blue-yellow signals relative to mid grey (-1 to 1).
    mid_level : ndarray, shape (N, K, HVC_GRID_PX, HVC_GRID_PX), float32
        Random-network and handcrafted features for higher visual cortex.
    """

    energy: np.ndarray
    colour: np.ndarray
    mid_level: np.ndarray


def describe_features() -> dict:
    """A JSON-ready description of the feature model, for ``truth/``."""
    return {
        "model_grid_px": MODEL_PX,
        "field_deg": FIELD_DEG,
        "energy": {
            "filters": "complex log-Gabor, magnitude = contrast energy",
            "sf_cpd": list(SF_CPD),
            "orientations_deg": [round(float(np.degrees(o)), 1) for o in ORIENTATIONS_RAD],
            "bandwidth_octaves": 1.4,
        },
        "colour": ["luminance", "red-green", "blue-yellow"],
        "mid_level": {
            "network": "3-layer convolutional network with fixed random weights (untrained)",
            "seed": HVC_NET_SEED,
            "channels": list(HVC_NET_CHANNELS),
            "handcrafted": [
                "saturation",
                "hue histogram (6 bins, chroma weighted)",
                "junction energy",
                "texture density",
                "local luminance contrast",
            ],
            "grid_px": HVC_GRID_PX,
        },
    }


def _to_model_grid(images: np.ndarray) -> torch.Tensor:
    """RGB uint8 (N, S, S, 3) -> float (N, 3, MODEL_PX, MODEL_PX) in [0, 1], anti-aliased."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-1] != MODEL_PX:
        x = F.interpolate(x, size=(MODEL_PX, MODEL_PX), mode="bilinear", antialias=True)
    return x.clamp(0.0, 1.0)


def _colour_signals(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> luminance, red-green, blue-yellow (N, 3, H, W) about -1..1."""
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    luminance = 0.299 * r + 0.587 * g + 0.114 * b - 0.5
    red_green = r - g
    blue_yellow = b - 0.5 * (r + g)
    return torch.stack([luminance, red_green, blue_yellow], dim=1)


def _log_gabor_bank() -> np.ndarray:
    """One-sided log-Gabor filters in the frequency domain: (n_sf, n_ori, P, P) float64."""
    freqs = np.fft.fftfreq(MODEL_PX) * MODEL_PX / FIELD_DEG  # cycles per degree
    fy, fx = np.meshgrid(freqs, freqs, indexing="ij")
    radius = np.hypot(fx, fy)
    theta = np.arctan2(fy, fx)
    log_radius = np.log(np.where(radius > 0, radius, 1.0))
    sigma_log = 0.5 * 1.4 * np.log(2.0)  # 1.4-octave full bandwidth (about 1 SD each side)
    bank = np.zeros((len(SF_CPD), len(ORIENTATIONS_RAD), MODEL_PX, MODEL_PX))
    for i, sf in enumerate(SF_CPD):
        radial = np.exp(-((log_radius - np.log(sf)) ** 2) / (2 * sigma_log**2))
        radial[radius == 0] = 0.0  # no response to the mean
        for j, ori in enumerate(ORIENTATIONS_RAD):
            # One-sided angular window: the inverse FFT is complex (quadrature pair),
            # and its magnitude is the phase-invariant contrast energy.
            delta = np.angle(np.exp(1j * (theta - ori)))
            bank[i, j] = radial * np.exp(-(delta**2) / (2 * (np.pi / 8) ** 2))
    return bank


def _contrast_energy(luminance: torch.Tensor, bank: np.ndarray) -> torch.Tensor:
    """(N, H, W) luminance -> (N, n_sf, n_ori, H, W) energy."""
    spectrum = torch.fft.fft2(luminance.float())[:, None, None]  # (N, 1, 1, H, W)
    response = torch.fft.ifft2(spectrum * torch.from_numpy(bank).float()[None])
    return response.abs()


def _random_net() -> list[torch.Tensor]:
    """Zero-mean random filters (so each layer detects structure, not mean level)."""
    generator = torch.Generator().manual_seed(HVC_NET_SEED)
    shapes = [(HVC_NET_CHANNELS[0], 3, 5, 5)]
    shapes.append((HVC_NET_CHANNELS[1], HVC_NET_CHANNELS[0], 5, 5))
    shapes.append((HVC_NET_CHANNELS[2], HVC_NET_CHANNELS[1], 3, 3))
    weights = []
    for shape in shapes:
        w = torch.randn(shape, generator=generator)
        w = w - w.mean(dim=(1, 2, 3), keepdim=True)
        weights.append(w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
    return weights


def _random_net_features(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, 64, 64) -> (N, C3, 16, 16): conv-ReLU-pool-normalise, three times."""
    w1, w2, w3 = _random_net()
    x = F.avg_pool2d(F.relu(F.conv2d(rgb - 0.5, w1, padding=2)), 2)  # (N, 24, 32, 32)
    x = x / (x.mean(dim=1, keepdim=True) + 0.05)  # divisive normalisation across channels
    x = F.max_pool2d(F.relu(F.conv2d(x, w2, padding=2)) ** 2, 2)  # (N, 32, 16, 16)
    x = x / (x.mean(dim=1, keepdim=True) + 0.05)
    return F.relu(F.conv2d(x, w3, padding=1))  # (N, 32, 16, 16)


def _handcrafted_features(
    rgb: torch.Tensor, colour: torch.Tensor, energy: torch.Tensor
) -> torch.Tensor:
    """Shape and colour statistics on the HVC grid: (N, N_HANDCRAFTED, 16, 16)."""
    pool = MODEL_PX // HVC_GRID_PX
    saturation = rgb.amax(dim=1) - rgb.amin(dim=1)  # (N, H, W)
    chroma = torch.hypot(colour[:, 1], colour[:, 2])
    hue = torch.atan2(colour[:, 2], colour[:, 1])
    hue_bins = [
        chroma * torch.cos(hue - k * np.pi / 3).clamp(min=0) ** 4 for k in range(6)
    ]  # 6 broadly tuned hue channels
    mid = energy[:, 1:3]  # (N, 2, n_ori, H, W): middle frequencies
    n_ori = mid.shape[2]
    orthogonal = mid.roll(n_ori // 2, dims=2)
    junction = torch.sqrt(mid * orthogonal).mean(dim=(1, 2))  # corners and crossings
    density = energy[:, 2:].sum(dim=(1, 2)) / (energy[:, :2].sum(dim=(1, 2)) + 1e-3)
    lum = colour[:, 0:1]
    local_mean = F.avg_pool2d(lum, pool)
    local_contrast = (F.avg_pool2d(lum**2, pool) - local_mean**2).clamp(min=0).sqrt()
    maps = torch.stack([saturation, *hue_bins, junction, density], dim=1)  # (N, 9, H, W)
    return torch.cat([F.avg_pool2d(maps, pool), local_contrast], dim=1)


def compute_features(images: np.ndarray, batch_size: int = 128) -> FeatureMaps:
    """Compute all feature maps of a stack of images.

    Parameters
    ----------
    images : ndarray, shape (N, S, S, 3), uint8, RGB
    batch_size : int
        Images per batch (bounds the memory of the FFT and the network).

    Returns
    -------
    FeatureMaps
    """
    bank = _log_gabor_bank()
    energy, colour, mid_level = [], [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            rgb = _to_model_grid(images[start : start + batch_size])  # (B, 3, 64, 64)
            signals = _colour_signals(rgb)
            batch_energy = _contrast_energy(signals[:, 0], bank)
            net = _random_net_features(rgb)
            hand = _handcrafted_features(rgb, signals, batch_energy)
            factor = MODEL_PX // EARLY_GRID_PX
            pooled = F.avg_pool2d(batch_energy.flatten(1, 2), factor)  # (B, n_sf*n_ori, 32, 32)
            energy.append(pooled.reshape(*batch_energy.shape[:3], *pooled.shape[-2:]).numpy())
            colour.append(F.avg_pool2d(signals, factor).numpy())
            mid_level.append(torch.cat([net, hand], dim=1).numpy())
    return FeatureMaps(
        energy=np.concatenate(energy),
        colour=np.concatenate(colour),
        mid_level=np.concatenate(mid_level),
    )
