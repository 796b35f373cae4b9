"""Validation inside training: held-out whole images, the best checkpoint, early stopping.

The validation split (``data.val_images`` or ``data.val_fraction``) holds whole
training images with all their presentations. Every ``train.val_every_iters``
iterations it is evaluated the way the test sets are: presentations averaged,
z-scored with the training statistics, scaled by ``sqrt(n)``, the generator run in
eval mode and centre-cropped, then pairwise pixel identification and PixCorr on
RGB images (as ``e2e-recon evaluate`` computes them) and the unweighted image and
feature losses. Values are logged with a ``val_`` prefix. The generator with the
best ``train.best_metric`` so far is written to ``RUN/best.pt`` (the project
generator format, with ``norm``), which reconstruction prefers over
``generator.pt``; after ``train.early_stop_patience`` validations without
improvement training stops. Validation draws no random numbers, so exact resume
is unaffected; its tracking state travels in every snapshot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from e2e_recon.data.images import bgr_uint8_tensor_to_caffe, caffe_to_rgb_float, center_crop_uint8
from e2e_recon.device import autocast
from e2e_recon.errors import ConfigError
from e2e_recon.evaluate.metrics import pairwise_identification, pixcorr
from e2e_recon.nets.generator import center_crop
from e2e_recon.train import losses

#: Metrics ``train.best_metric`` may name, and whether higher is better.
BEST_METRICS: dict[str, bool] = {
    "pixel_identification": True,
    "pixcorr": True,
    "image_loss": False,
    "feature_loss": False,
}
BEST_NAME = "best.pt"
#: Below this many validation images ``train`` warns that model selection is unreliable.
MIN_RELIABLE_VAL_IMAGES = 20


def check_best_metric(name: str) -> None:
    """Raise ConfigError unless ``name`` is a metric validation computes."""
    if name not in BEST_METRICS:
        raise ConfigError(
            f"train.best_metric={name!r} is not a validation metric; choose one of "
            f"{', '.join(BEST_METRICS)}"
        )


@dataclass
class BestTracker:
    """Best validation value so far, and the validations since a clear improvement.

    ``best_value`` follows every improvement (``best.pt`` keeps that generator);
    the early-stopping count ``since_best`` restarts only when a value beats the
    last counted one (``reference_value``) by more than ``min_delta``, so that
    tiny fluctuations of a noisy validation split do not keep a run going.
    """

    higher_is_better: bool = True
    best_value: float = float("nan")
    best_iteration: int = 0
    since_best: int = 0
    evaluations: int = 0
    min_delta: float = 0.0
    reference_value: float = float("nan")

    def update(self, value: float, iteration: int) -> bool:
        """Record one validation; True when it is a new best (NaN never is)."""
        self.evaluations += 1
        if np.isnan(value):
            self.since_best += 1
            return False
        better = np.isnan(self.best_value) or self._beats(value, self.best_value, 0.0)
        if better:
            self.best_value, self.best_iteration = float(value), iteration
        if np.isnan(self.reference_value) or self._beats(
            value, self.reference_value, self.min_delta
        ):
            self.reference_value, self.since_best = float(value), 0
        else:
            self.since_best += 1
        return better

    def _beats(self, value: float, other: float, margin: float) -> bool:
        return value > other + margin if self.higher_is_better else value < other - margin

    def should_stop(self, patience: int) -> bool:
        """Early stopping: ``patience`` validations in a row without improvement."""
        return patience > 0 and self.since_best >= patience

    def to_dict(self) -> dict[str, Any]:
        """Plain values for a checkpoint."""
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> BestTracker:
        """Inverse of :meth:`to_dict`."""
        return cls(**state)


class Validator:
    """The validation split prepared once: scaled patterns and target crops.

    Parameters
    ----------
    val_set : data.dataset.TestSet
        Trial-averaged, z-scored validation patterns and their images (BGR uint8).
    crop_px : int
        Centre crop of images and generator output (as at test time).
    feature_layers : tuple of str
        Comparator layers of the feature loss.
    """

    def __init__(self, val_set: Any, crop_px: int, feature_layers: tuple[str, ...]) -> None:
        if val_set is None or len(val_set.voxels) < 2:
            raise ConfigError(
                "validation needs a split of at least 2 images: set data.val_images (e.g. 50) "
                "or data.val_fraction (e.g. 0.1); or turn validation off with "
                "data.val_fraction=0 data.val_images=0 (early stopping and best.pt follow)"
            )
        scale = np.sqrt(val_set.n_trials.astype(np.float64))[:, None]  # test-time sqrt(n)
        self.voxels = torch.from_numpy((val_set.voxels * scale).astype(np.float32))  # (M, V)
        crops = np.ascontiguousarray(center_crop_uint8(np.asarray(val_set.images), crop_px))
        self.targets = bgr_uint8_tensor_to_caffe(torch.from_numpy(crops))  # (M, 3, c, c)
        self.targets_rgb = caffe_to_rgb_float(self.targets.numpy())  # (M, c, c, 3)
        self.crop_px = crop_px
        self.feature_layers = feature_layers

    def __len__(self) -> int:
        return int(self.voxels.shape[0])

    @torch.no_grad()
    def evaluate(
        self,
        generator: nn.Module,
        comparator: nn.Module | None,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        batch_size: int = 64,
    ) -> dict[str, float]:
        """Validation figures of the current generator (un-prefixed names).

        Returns
        -------
        dict
            ``pixel_identification``, ``pixcorr``, ``image_loss`` and, with a
            comparator, ``feature_loss`` (unweighted, batch means as in training).
        """
        was_training = generator.training
        generator.eval()
        fakes = []
        try:
            for start in range(0, len(self), batch_size):
                x = self.voxels[start : start + batch_size].to(device)  # (B, V)
                with autocast(device, dtype):
                    out = center_crop(generator(x), self.crop_px)  # (B, 3, c, c)
                fakes.append(out.float().cpu())
        finally:
            generator.train(was_training)
        fake = torch.cat(fakes)  # (M, 3, c, c), Caffe space
        rgb = caffe_to_rgb_float(fake.numpy())  # (M, c, c, 3)
        result = {
            "pixel_identification": float(
                np.nanmean(pairwise_identification(rgb, self.targets_rgb))
            ),
            "pixcorr": float(np.nanmean(pixcorr(rgb, self.targets_rgb))),
            "image_loss": float(losses.image_loss(fake, self.targets).mean()),
        }
        if comparator is not None and self.feature_layers:
            result["feature_loss"] = self._feature_loss(comparator, fake, device, batch_size)
        return result

    def _feature_loss(
        self, comparator: nn.Module, fake: torch.Tensor, device: torch.device, batch_size: int
    ) -> float:
        total = 0.0
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            f_fake = comparator(fake[start:stop].to(device), layers=self.feature_layers)
            f_real = comparator(self.targets[start:stop].to(device), layers=self.feature_layers)
            total += float(losses.feature_loss(f_fake, f_real, self.feature_layers).sum())
        return total / len(self)


def validation_plan(cfg: Any, val_set: Any) -> tuple[bool, list[str]]:
    """Whether this run validates, and what to tell the user about it.

    Validation is on when there is a validation split and ``train.val_every_iters``
    is above 0. Without a split (``data.val_fraction=0`` and ``data.val_images=0``)
    it is off, and so are ``best.pt`` and early stopping: that is the one switch.

    Returns
    -------
    (bool, list of str)
        On or off, and warnings (a split too small to rank generators, a split
        held out but never used).
    """
    n_images = 0 if val_set is None else len(val_set.voxels)
    every = cfg.train.val_every_iters
    notes = []
    if n_images and every <= 0:
        notes.append(
            f"{n_images} training images are held out for validation but "
            "train.val_every_iters=0 never uses them: set train.val_every_iters (e.g. 100) to "
            "validate, or data.val_fraction=0 data.val_images=0 to train on them"
        )
    if not n_images and every > 0:
        notes.append(
            "no validation split (data.val_fraction=0, data.val_images=0): validation, best.pt "
            "and early stopping are off"
        )
    if 2 <= n_images < MIN_RELIABLE_VAL_IMAGES and every > 0:
        notes.append(
            f"the validation split holds {n_images} images (< {MIN_RELIABLE_VAL_IMAGES}): "
            "identification on so few saturates and best.pt may come from an early, noisy "
            f"validation; train.best_metric={cfg.train.best_metric!r} is used. Raise "
            "data.val_images, or turn validation off with data.val_fraction=0"
        )
    return bool(n_images) and every > 0, notes


def write_best(run_dir: Path, ckpt: dict[str, Any]) -> Path:
    """Write ``RUN/best.pt`` (project generator format with ``norm``) from a checkpoint dict."""
    from e2e_recon.train.checkpoint import atomic_torch_save, generator_file_payload

    path = run_dir / BEST_NAME
    payload = generator_file_payload(ckpt)
    payload["meta"]["selected_by"] = "validation"
    atomic_torch_save(payload, path)
    return path
