"""The simulated visual cortex: areas, voxel layout and the encoding model.

Voxels sit on 2-mm grids, one grid per area and hemisphere, laid out so that grid
neighbours have neighbouring receptive fields (retinotopy): the eccentricity axis
follows a log map (cortical magnification ~ 1 / (ecc + 0.75 deg)) and the other axis
the polar angle of the contralateral hemifield.

Early areas (V1, V2, V3, hV4) follow the population-receptive-field model of contrast
energy (Kay et al. 2008, 2013): a Gaussian pRF (size growing with eccentricity and up
the hierarchy) pools log-Gabor energy, weighted by a spatial-frequency tuning whose
preferred frequency falls with eccentricity and a mild (mostly radial) orientation
bias, then a compressive power nonlinearity (exponent < 1, smaller in higher areas);
luminance and colour-opponent signals add through the same compression, sign kept.

Higher visual cortex (HVC) voxels have large receptive fields near the fovea and pool
a sparse combination of nonlinear mid-level features (see :mod:`.features`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import erf

from e2e_recon.sim.features import (
    EARLY_GRID_PX,
    FIELD_DEG,
    HVC_GRID_PX,
    ORIENTATIONS_RAD,
    SF_CPD,
    FeatureMaps,
)

__all__ = ["AREAS", "AreaSpec", "BrainModel", "build_brain", "roi_masks"]


@dataclass(frozen=True)
class AreaSpec:
    """Parameters of one visual area.

    ``sigma_deg = sigma_intercept + sigma_slope * eccentricity``; ``sf_scale`` multiplies
    the V1 preferred spatial frequency; ``colour_sd`` and ``luminance_sd`` are the spread
    of the (signed) colour and luminance weights; ``gain`` the area's signal gain.
    """

    name: str
    share: float
    sigma_intercept: float
    sigma_slope: float
    exponent: float
    sf_scale: float
    luminance_sd: float
    colour_sd: float
    gain: float


AREAS: tuple[AreaSpec, ...] = (
    # Luminance and colour weights are below contrast energy's (weight ~1): BOLD is
    # dominated by contrast. With weights 4x smaller, black letters on grey were
    # undecodable by a ridge decoder trained on natural images (chance even for
    # noiseless letter responses), unlike real recordings.
    AreaSpec("V1", 0.16, 0.20, 0.10, 0.50, 1.00, 0.24, 0.12, 1.00),
    AreaSpec("V2", 0.15, 0.30, 0.15, 0.40, 0.80, 0.24, 0.12, 1.00),
    AreaSpec("V3", 0.12, 0.40, 0.25, 0.35, 0.65, 0.18, 0.144, 0.90),
    AreaSpec("hV4", 0.08, 0.60, 0.40, 0.30, 0.50, 0.12, 0.36, 0.80),
    AreaSpec("HVC", 0.49, 2.50, 0.50, 0.40, 0.40, 0.00, 0.00, 0.75),
)
EARLY = ("V1", "V2", "V3", "hV4")
MAX_ECC_DEG = 7.5  # beyond the 6-degree half-field: a few voxels see mostly grey
MAGNIFICATION_E2 = 0.75


@dataclass
class BrainModel:
    """Voxel table and encoding parameters of a simulated subject.

    Per-voxel arrays have shape (V,); ``blocks`` lists the grid shape (n_u, n_v, n_z) of
    each area-hemisphere grid and ``block``/``grid`` locate each voxel on them (used to
    make noise spatially correlated).
    """

    area: np.ndarray  # (V,) int index into AREAS
    xyz_mm: np.ndarray  # (V, 3) float
    block: np.ndarray  # (V,) int
    grid: np.ndarray  # (V, 3) int
    blocks: list[tuple[int, int, int]]
    prf_xy_deg: np.ndarray  # (V, 2)
    prf_sigma_deg: np.ndarray  # (V,)
    sf_weights: np.ndarray  # (V, n_sf)
    ori_weights: np.ndarray  # (V, n_ori)
    colour_weights: np.ndarray  # (V, 3): luminance, red-green, blue-yellow
    mid_weights: np.ndarray  # (V, K) (zero for early voxels)
    exponent: np.ndarray  # (V,)
    gain: np.ndarray  # (V,)
    noise_sd: np.ndarray  # (V,)
    baseline: np.ndarray  # (V,)
    scales: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_voxels(self) -> int:
        """Number of voxels."""
        return len(self.area)

    def fit_scales(self, features: FeatureMaps) -> None:
        """Set feature normalisers from reference (training) images: mean energy per
        frequency, SD of the colour signals, mean of each mid-level feature."""
        self.scales = {
            "energy": features.energy.mean(axis=(0, 2, 3, 4)).astype(np.float32),
            "colour": features.colour.std(axis=(0, 2, 3)).astype(np.float32) + 1e-6,
            "mid": features.mid_level.mean(axis=(0, 2, 3)).astype(np.float32) + 1e-6,
        }

    def responses(self, features: FeatureMaps, batch_size: int = 64) -> np.ndarray:
        """Noiseless drive of every voxel to every image: (N, V) float32."""
        if not self.scales:
            self.fit_scales(features)
        early = np.isin(self.area, [i for i, a in enumerate(AREAS) if a.name in EARLY])
        out = np.zeros((len(features.energy), self.n_voxels), dtype=np.float32)
        pooling = _gaussian_pooling(
            self.prf_xy_deg[early], self.prf_sigma_deg[early], EARLY_GRID_PX
        )
        hvc_pooling = _gaussian_pooling(
            self.prf_xy_deg[~early], self.prf_sigma_deg[~early], HVC_GRID_PX
        )
        channel_w = (self.sf_weights[early, :, None] * self.ori_weights[early, None, :]).reshape(
            int(early.sum()), -1
        )  # (V_early, n_sf * n_ori)
        for start in range(0, len(out), batch_size):
            rows = slice(start, start + batch_size)
            out[rows, early] = self._early_drive(features, rows, pooling, channel_w, early)
            mid = features.mid_level[rows] / self.scales["mid"][None, :, None, None]
            pooled = mid.reshape(-1, HVC_GRID_PX**2) @ hvc_pooling  # (B*K, V_hvc)
            pooled = pooled.reshape(len(mid), mid.shape[1], -1)
            drive = np.einsum("bkv,vk->bv", pooled, self.mid_weights[~early])
            out[rows, ~early] = np.maximum(drive, 0.0) ** self.exponent[~early]
        return out

    def _early_drive(self, features, rows, pooling, channel_w, early) -> np.ndarray:
        energy = features.energy[rows] / self.scales["energy"][None, :, None, None, None]
        n_img, n_sf, n_ori = energy.shape[:3]
        pooled = energy.reshape(-1, EARLY_GRID_PX**2) @ pooling  # (B*C, V_early)
        pooled = pooled.reshape(n_img, n_sf * n_ori, -1)
        contrast = np.einsum("bcv,vc->bv", pooled, channel_w)
        exponent = self.exponent[early]
        drive = np.maximum(contrast, 0.0) ** exponent
        colour = features.colour[rows] / self.scales["colour"][None, :, None, None]
        colour_pooled = (colour.reshape(-1, EARLY_GRID_PX**2) @ pooling).reshape(n_img, 3, -1)
        signed = np.sign(colour_pooled) * np.abs(colour_pooled) ** exponent
        return drive + np.einsum("bkv,vk->bv", signed, self.colour_weights[early])

    def truth(self) -> dict[str, np.ndarray]:
        """Every parameter as arrays, for ``truth/encoding.npz``."""
        arrays = {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}
        arrays["area_names"] = np.array([a.name for a in AREAS])
        arrays["blocks"] = np.array(self.blocks)
        arrays.update({f"scale_{k}": v for k, v in self.scales.items()})
        return arrays


def _gaussian_pooling(xy_deg: np.ndarray, sigma_deg: np.ndarray, grid_px: int) -> np.ndarray:
    """Gaussian pRFs integrated over each pixel of a grid_px x grid_px display.

    Weights are the Gaussian's mass inside each pixel (exact for maps that are pixel
    averages, and for pRFs smaller than a pixel), so a pRF partly off the display
    sees mostly nothing, as it should. Returns (grid_px**2, V) float32.
    """
    edges = np.linspace(-FIELD_DEG / 2, FIELD_DEG / 2, grid_px + 1)
    scale = np.sqrt(2.0) * sigma_deg[None, :]

    def mass(centre: np.ndarray) -> np.ndarray:  # (grid_px, V)
        cdf = 0.5 * (1 + erf((edges[:, None] - centre[None, :]) / scale))
        return np.diff(cdf, axis=0)

    wx = mass(xy_deg[:, 0])
    wy = mass(-xy_deg[:, 1])  # image rows run downwards, visual-field y upwards
    return (wy[:, None, :] * wx[None, :, :]).reshape(grid_px**2, -1).astype(np.float32)


def _block_shape(n: int) -> tuple[int, int, int]:
    """Grid (eccentricity, polar angle, depth) holding at least n voxels, 2 deep."""
    n_u = max(1, round(np.sqrt(n / 2 * 1.5)))
    n_v = max(1, int(np.ceil(n / 2 / n_u)))
    return n_u, n_v, 2


def _area_counts(n_voxels: int, area_shares: tuple[float, ...] | None = None) -> list[int]:
    shares = np.array([a.share for a in AREAS] if area_shares is None else area_shares)
    counts = np.floor(shares / shares.sum() * n_voxels).astype(int)
    counts[-1] += n_voxels - counts.sum()
    return [int(c) for c in counts]


def _place_block(spec: AreaSpec, n: int, hemisphere: int, rng: np.random.Generator) -> dict:
    """Grid positions, coordinates and pRF centres of one area in one hemisphere."""
    shape = _block_shape(n)
    iu, iv, iz = (g.ravel()[:n] for g in np.indices(shape))
    if spec.name == "HVC":  # no clear retinotopy: large RFs scattered around the fovea
        ecc = np.abs(rng.normal(0.0, 2.0, size=n))
        polar = rng.uniform(-np.pi / 2, np.pi / 2, size=n)
    else:
        u = (iu + rng.uniform(0.2, 0.8, size=n)) / shape[0]
        ecc = MAGNIFICATION_E2 * ((1 + MAX_ECC_DEG / MAGNIFICATION_E2) ** u - 1)
        polar = ((iv + rng.uniform(0.2, 0.8, size=n)) / shape[1] - 0.5) * np.pi
    # Left hemisphere (hemisphere -1) sees the right visual field and vice versa.
    x_deg = -hemisphere * ecc * np.cos(polar)
    y_deg = ecc * np.sin(polar)
    return {"iu": iu, "iv": iv, "iz": iz, "shape": shape, "ecc": ecc, "xy": (x_deg, y_deg)}


def _tuning(spec: AreaSpec, ecc: np.ndarray, xy: np.ndarray, rng: np.random.Generator):
    """Spatial-frequency and orientation weights of early voxels."""
    n = len(ecc)
    # Preferred period grows linearly with eccentricity (Broderick et al. 2022, V1).
    preferred = spec.sf_scale / (0.12 * ecc + 0.35) * np.exp(rng.normal(0, 0.15, size=n))
    log_dist = np.log2(np.asarray(SF_CPD))[None, :] - np.log2(preferred)[:, None]
    sf_w = np.exp(-(log_dist**2) / 2.0)  # 1-octave SD tuning in log frequency
    sf_w /= sf_w.sum(axis=1, keepdims=True)
    radial = np.arctan2(xy[:, 1], xy[:, 0])
    preferred_ori = np.where(rng.random(n) < 0.6, radial, rng.uniform(0, np.pi, size=n))
    bias = rng.uniform(0.0, 0.4, size=n)
    ori = np.asarray(ORIENTATIONS_RAD)[None, :]
    ori_w = 1.0 + bias[:, None] * np.cos(2 * (ori - preferred_ori[:, None]))
    return sf_w, ori_w / ori_w.sum(axis=1, keepdims=True)


def _mid_weights(n: int, n_features: int, rng: np.random.Generator) -> np.ndarray:
    """Sparse non-negative feature mixtures: each HVC voxel likes a few features."""
    weights = np.full((n, n_features), 0.02)
    for v in range(n):
        chosen = rng.choice(n_features, size=3, replace=False)
        weights[v, chosen] += rng.dirichlet(np.ones(3))
    return weights


def build_brain(
    n_voxels: int,
    n_mid_features: int,
    rng: np.random.Generator,
    area_shares: tuple[float, ...] | None = None,
) -> BrainModel:
    """Draw a simulated visual cortex.

    Parameters
    ----------
    n_voxels : int
        Total number of VC voxels (split over V1, V2, V3, hV4, HVC by :data:`AREAS`).
    n_mid_features : int
        Number of mid-level feature maps (``FeatureMaps.mid_level.shape[1]``).
    rng : numpy Generator
    area_shares : tuple of float, optional
        Relative sizes of the areas (one per :data:`AREAS`); default their ``share``.

    Returns
    -------
    BrainModel
        Without feature scales; call ``fit_scales`` on training-image features.
    """
    parts: dict[str, list] = {k: [] for k in ("area", "xyz", "block", "grid", "xy", "ecc")}
    blocks: list[tuple[int, int, int]] = []
    y_offset = 0
    for index, (spec, count) in enumerate(
        zip(AREAS, _area_counts(n_voxels, area_shares), strict=True)
    ):
        half = [count // 2, count - count // 2]
        for hemisphere, n in zip((-1, 1), half, strict=True):
            placed = _place_block(spec, n, hemisphere, rng)
            x_mm = hemisphere * (12 + 2 * placed["iz"])
            y_mm = -100 + y_offset + 2 * placed["iu"]
            z_mm = 2 * placed["iv"] - placed["shape"][1]
            parts["xyz"].append(np.stack([x_mm, y_mm, z_mm], axis=1).astype(float))
            parts["grid"].append(np.stack([placed["iu"], placed["iv"], placed["iz"]], axis=1))
            parts["block"].append(np.full(n, len(blocks)))
            parts["area"].append(np.full(n, index))
            parts["xy"].append(np.stack(placed["xy"], axis=1))
            parts["ecc"].append(placed["ecc"])
            blocks.append(placed["shape"])
        y_offset += 2 * _block_shape(max(half))[0] + 4  # areas follow each other, 4-mm gap
    area = np.concatenate(parts["area"])
    ecc = np.concatenate(parts["ecc"])
    xy = np.concatenate(parts["xy"])
    return _encoding_parameters(area, ecc, xy, parts, blocks, n_mid_features, rng)


def _encoding_parameters(area, ecc, xy, parts, blocks, n_mid_features, rng) -> BrainModel:
    n = len(area)
    spec_of = [AREAS[a] for a in area]
    intercept = np.array([s.sigma_intercept for s in spec_of])
    sigma = intercept + np.array([s.sigma_slope for s in spec_of]) * ecc
    sigma *= np.exp(rng.normal(0.0, 0.1, size=n))
    sf_w = np.zeros((n, len(SF_CPD)))
    ori_w = np.zeros((n, len(ORIENTATIONS_RAD)))
    colour_w = np.zeros((n, 3))
    for index, spec in enumerate(AREAS):
        sel = area == index
        if spec.name in EARLY:
            sf_w[sel], ori_w[sel] = _tuning(spec, ecc[sel], xy[sel], rng)
            colour_w[sel, 0] = rng.normal(0.0, spec.luminance_sd, size=sel.sum())
            colour_w[sel, 1:] = rng.normal(0.0, spec.colour_sd, size=(sel.sum(), 2))
    hvc = area == len(AREAS) - 1
    mid_w = np.zeros((n, n_mid_features))
    mid_w[hvc] = _mid_weights(int(hvc.sum()), n_mid_features, rng)
    exponent = np.array([s.exponent for s in spec_of]) * np.exp(rng.normal(0, 0.1, size=n))
    gain = np.array([s.gain for s in spec_of]) * np.exp(rng.normal(0.0, 0.5, size=n))
    gain[rng.random(n) < np.where(hvc, 0.25, 0.1)] *= 0.15  # some voxels barely respond
    return BrainModel(
        area=area,
        xyz_mm=np.concatenate(parts["xyz"]),
        block=np.concatenate(parts["block"]),
        grid=np.concatenate(parts["grid"]),
        blocks=blocks,
        prf_xy_deg=xy,
        prf_sigma_deg=sigma,
        sf_weights=sf_w.astype(np.float32),
        ori_weights=ori_w.astype(np.float32),
        colour_weights=colour_w.astype(np.float32),
        mid_weights=mid_w.astype(np.float32),
        exponent=exponent.astype(np.float32),
        gain=gain,
        noise_sd=np.exp(rng.normal(0.0, 0.2, size=n)),
        baseline=rng.uniform(300.0, 1500.0, size=n),
    )


def roi_masks(brain: BrainModel) -> dict[str, np.ndarray]:
    """ROI membership (V,) bool: ROI_V1 ... ROI_HVC, ROI_LVC (V1-V3) and ROI_VC (all)."""
    names = [a.name for a in AREAS]
    masks = {f"ROI_{name}": brain.area == i for i, name in enumerate(names)}
    masks["ROI_LVC"] = np.isin(brain.area, [names.index(a) for a in ("V1", "V2", "V3")])
    masks["ROI_VC"] = np.ones(brain.n_voxels, dtype=bool)
    return masks
