"""Data-derived starting points for small datasets: loss-weight scales and first-layer init.

- :func:`mean_image_terms` measures the image and feature losses of the mean
  training image (the best constant output). With ``loss.weighting: mean_image``
  the feature and adversarial weights are read as fractions of the weighted image
  loss at that point (:func:`e2e_recon.train.losses.normalised_weights`), so a
  feature loss cannot swamp the pixel loss whatever the image size, comparator or
  layer.
- :func:`init_first_layer` replaces rows of the generator's first fully connected
  layer (``model.first_layer_init``) by the ridge decoder's voxel weights
  (``ridge``) or the voxels' principal directions (``pca``), rescaled to the norm
  of the random rows they replace.

Both are deterministic and draw no random numbers, so exact resume is unaffected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from e2e_recon.data.images import bgr_uint8_tensor_to_caffe, center_crop_uint8
from e2e_recon.device import autocast
from e2e_recon.errors import ConfigError
from e2e_recon.train import losses

FIRST_LAYER_INITS = ("random", "ridge", "pca")
WEIGHTINGS = ("absolute", "mean_image")


def centre_crops_caffe(images: np.ndarray, crop_px: int, max_images: int = 256) -> torch.Tensor:
    """Centre crops of evenly spaced cached images (BGR uint8), in Caffe space (B, 3, c, c)."""
    pick = np.linspace(0, len(images) - 1, min(max_images, len(images))).round().astype(int)
    crops = np.ascontiguousarray(center_crop_uint8(np.asarray(images[pick]), crop_px))
    return bgr_uint8_tensor_to_caffe(torch.from_numpy(crops))


@torch.no_grad()
def mean_image_terms(
    images: np.ndarray,
    crop_px: int,
    comparator: nn.Module | None,
    layers: tuple[str, ...],
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> tuple[float, float]:
    """Unweighted image and feature losses of the mean training crop (per-sample means).

    Parameters
    ----------
    images : ndarray, shape (M, S, S, 3), uint8 BGR
        The training images.
    comparator : nn.Module or None
        The frozen comparator; None gives a feature term of 0.

    Returns
    -------
    (float, float)
        ``image_loss`` and ``feature_loss`` of the mean crop against the crops.
    """
    crops = centre_crops_caffe(images, crop_px).to(device)  # (B, 3, c, c)
    mean = crops.mean(dim=0, keepdim=True).expand_as(crops)  # (B, 3, c, c)
    image = float(losses.image_loss(mean, crops).mean())
    if comparator is None or not layers:
        return image, 0.0
    with autocast(device, dtype):
        f_mean = comparator(mean[:1].contiguous(), layers=layers)
        f_real = comparator(crops, layers=layers)
    f_mean = {k: v.expand_as(f_real[k]) for k, v in f_mean.items()}
    return image, float(losses.feature_loss(f_mean, f_real, layers).mean())


def check_priors(cfg: Any) -> None:
    """Raise ConfigError for an unknown ``loss.weighting`` or ``model.first_layer_init``."""
    if cfg.loss.weighting not in WEIGHTINGS:
        raise ConfigError(
            f"loss.weighting={cfg.loss.weighting!r}; choose one of {', '.join(WEIGHTINGS)}"
        )
    if cfg.model.first_layer_init not in FIRST_LAYER_INITS:
        raise ConfigError(
            f"model.first_layer_init={cfg.model.first_layer_init!r}; choose one of "
            f"{', '.join(FIRST_LAYER_INITS)}"
        )


def first_linear(generator: nn.Module) -> nn.Linear:
    """The generator's first fully connected layer (``defc7``)."""
    return next(m for m in generator.modules() if isinstance(m, nn.Linear))


@torch.no_grad()
def init_first_layer(generator: nn.Module, data: Any, method: str, crop_px: int) -> int:
    """Overwrite leading rows of the first layer's weight with data-derived directions.

    Parameters
    ----------
    generator : nn.Module
        Freshly initialised generator (random He weights).
    data : data.dataset.TrainingSet
        z-scored training voxels, images and ``image_index``.
    method : {"random", "ridge", "pca"}
        ``ridge``: columns of a ridge decoder from voxels to the principal components
        of the (32 px) training images; ``pca``: the voxels' principal directions.

    Returns
    -------
    int
        Rows replaced (0 for ``random``).
    """
    if method == "random":
        return 0
    return init_weight_rows(first_linear(generator).weight, data, method, crop_px)


@torch.no_grad()
def init_weight_rows(weight: torch.Tensor, data: Any, method: str, crop_px: int) -> int:
    """:func:`init_first_layer` on a weight tensor ``(F, V)`` (a view is written through).

    A shared generator's input layers are column blocks of one weight: each block is
    initialised from its own subject's data.
    """
    width = weight.shape[0]
    voxels = np.asarray(data.voxels, dtype=np.float64)  # (N, V)
    if method == "ridge":
        directions = _ridge_directions(data, crop_px, width)
    else:
        directions = _principal_directions(voxels, width)
    rows = directions.shape[0]  # (r, V)
    norms = weight.norm(dim=1).mean()  # keep the random rows' scale
    new = torch.from_numpy(directions).to(weight)
    new = new / new.norm(dim=1, keepdim=True).clamp(min=1e-12) * norms
    weight[:rows] = new
    return rows


def _principal_directions(voxels: np.ndarray, count: int) -> np.ndarray:
    """Leading right singular vectors of the centred voxels: (r, V), r <= count."""
    centred = voxels - voxels.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)  # (min(N, V), V)
    return vt[: min(count, vt.shape[0] - 1)]


def _ridge_directions(data: Any, crop_px: int, count: int) -> np.ndarray:
    """Voxel weights of a ridge decoder onto image principal components: (r, V)."""
    from e2e_recon.recon.baselines import RidgeDecoder

    crops = center_crop_uint8(np.asarray(data.images), crop_px)  # (M, c, c, 3)
    decoder = RidgeDecoder(decode_px=min(32, crop_px), n_components=min(count, 256))
    decoder.fit(np.asarray(data.voxels), crops, np.asarray(data.image_index))
    return np.asarray(decoder.weights_, dtype=np.float64).T  # (r, V)
