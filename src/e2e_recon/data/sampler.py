"""Random training batches cut where training runs: on the GPU when the set fits there.

The training set (uint8 stimulus images and z-scored voxels) is uploaded once to
the training device and every batch is made there by tensor indexing: no Python
loop over samples, no host-to-device copy of images per step. The random draws
(rows, crop offsets) still come from the run's seeded CPU ``torch.Generator`` and
only the small index tensors travel, so the random stream, and with it the
batches, are the same on every device and a resumed run continues bit for bit.

:func:`choose_data_device` decides where the set lives (``data.placement``): on
the training device when it fits in a share of its free memory, otherwise in host
memory, with batches copied each step. On a CPU both are the same memory and the
images stay memory-mapped from the cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from e2e_recon.data.images import crops_bgr_uint8_to_caffe
from e2e_recon.errors import ConfigError, DataError

if TYPE_CHECKING:
    from e2e_recon.data.dataset import TrainingSet

__all__ = [
    "PLACEMENTS",
    "CropSampler",
    "check_placement",
    "choose_data_device",
    "training_set_bytes",
]

PLACEMENTS = ("auto", "device", "host")

#: ``auto`` puts the training set on the device when it needs at most this share of the
#: device's free memory: the rest is left to the networks, their activations and the
#: optimiser state (the paper step at batch 64: docs/speed.md, "Memory").
MAX_DATA_SHARE = 0.3


def training_set_bytes(training_set: TrainingSet) -> int:
    """Bytes the training set takes on a device: images (uint8) plus voxels (float32)."""
    return int(training_set.images.nbytes) + int(np.asarray(training_set.voxels).nbytes)


def _free_and_total(device: torch.device) -> tuple[int, int] | None:
    """Free and total bytes of an accelerator, or None where torch cannot tell."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return int(free), int(total)
    return None


def check_placement(placement: str) -> None:
    """ConfigError naming ``data.placement`` and its choices when ``placement`` is not one."""
    if placement not in PLACEMENTS:
        raise ConfigError(
            f"data.placement={placement!r}; use one of {', '.join(PLACEMENTS)} (auto: on the "
            "training device when the set fits there, else in host memory)"
        )


def choose_data_device(
    n_bytes: int, device: torch.device, placement: str = "auto"
) -> tuple[torch.device, str]:
    """Where the training set lives, and one line saying so for the log.

    Parameters
    ----------
    n_bytes : int
        Size of the training set (:func:`training_set_bytes`).
    device : torch.device
        The training device.
    placement : {"auto", "device", "host"}
        ``auto``: on ``device`` when it is the CPU, or when ``n_bytes`` fits in
        :data:`MAX_DATA_SHARE` of the device's free memory; ``device`` / ``host``
        force one side.

    Returns
    -------
    (torch.device, str)
        The device the sampler keeps the set on, and the message.
    """
    check_placement(placement)
    size = f"{n_bytes / 2**20:,.0f} MB"
    host = torch.device("cpu")
    if device.type == "cpu":
        return host, f"training set ({size}) in host memory; batches cut by tensor indexing"
    if placement == "device":
        return device, f"training set ({size}) on {device} (data.placement=device)"
    if placement == "host":
        return host, (
            f"training set ({size}) in host memory (data.placement=host): batches are cut on "
            f"the CPU and copied to {device} each step"
        )
    memory = _free_and_total(device)
    if memory is None:
        return host, (
            f"training set ({size}) in host memory: the free memory of {device} is unknown; "
            "set data.placement=device to upload it"
        )
    free, _ = memory
    if n_bytes <= MAX_DATA_SHARE * free:
        return device, (
            f"training set ({size}) on {device} ({free / 2**30:.1f} GB free); batches cut there"
        )
    return host, (
        f"training set ({size}) kept in host memory: more than {MAX_DATA_SHARE:.0%} of the "
        f"{free / 2**30:.1f} GB free on {device}. Batches are cut on the CPU and copied each "
        "step, which can leave the GPU waiting; data.placement=device forces the upload"
    )


class CropSampler:
    """Random training batches: z-scored voxels and random crops in Caffe space.

    The images and voxels are held on ``device`` (on the CPU the images stay
    memory-mapped); each batch is one index into the voxels and one into the crop
    windows of the images (:func:`e2e_recon.data.images.crops_bgr_uint8_to_caffe`).
    Offsets are uniform; there is no mirroring.

    Parameters
    ----------
    training_set : TrainingSet
    crop_px : int
        Crop side (227 in the paper, from 248-px images).
    device : torch.device, optional
        Where the set is held and batches are made (default CPU).
    """

    def __init__(
        self, training_set: TrainingSet, crop_px: int = 227, device: torch.device | None = None
    ) -> None:
        size = training_set.images.shape[1]
        if crop_px > size:
            raise DataError(f"crop_px={crop_px} is larger than the {size}-px cached images.")
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.crop_px = crop_px
        self.max_offset = size - crop_px
        voxels = torch.from_numpy(np.ascontiguousarray(training_set.voxels))  # (N, V)
        self.voxels = voxels.to(self.device)  # (N, V) float32
        # Row -> image stays on the CPU: the random draws that use it are made there.
        self.image_index = torch.from_numpy(training_set.image_index)  # (N,) int64
        images = torch.from_numpy(training_set.images)  # (M, S, S, 3) uint8, memory-mapped
        self.images = images.to(self.device)  # a no-op on the CPU: stays memory-mapped

    def __len__(self) -> int:
        return int(self.voxels.shape[0])

    def sample(
        self, batch_size: int, generator: torch.Generator, rows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``batch_size`` samples uniformly with replacement, or take ``rows``.

        Returns
        -------
        voxels : Tensor, shape (B, V), float32, on :attr:`device`
        crops : Tensor, shape (B, 3, crop, crop), float32, Caffe space, channels-last
            memory, on :attr:`device`
        """
        rows, crops = self.draw(batch_size, generator, rows)
        return self.voxels[rows.to(self.device)], crops

    def draw(
        self, batch_size: int, generator: torch.Generator, rows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample rows uniformly with replacement and cut a random crop of each one's image.

        Parameters
        ----------
        generator : torch.Generator
            A CPU generator: every draw is made on the CPU, whatever :attr:`device`.
        rows : Tensor, shape (B,), int64, optional
            The rows to use instead of drawing them (``data.sampling: epoch``); the
            crop offsets are still drawn from ``generator``.

        Returns
        -------
        rows : Tensor, shape (B,), int64, rows of ``voxels`` (CPU)
        crops : Tensor, shape (B, 3, crop, crop), float32, Caffe space, on :attr:`device`
        """
        if rows is None:
            rows = torch.randint(len(self), (batch_size,), generator=generator)  # (B,)
        rows = rows.cpu()
        offsets = torch.randint(self.max_offset + 1, (2, batch_size), generator=generator)
        return rows, self.crops(self.image_index[rows], offsets[0], offsets[1])

    def crops(self, images: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor) -> torch.Tensor:
        """Crops of images ``images`` (B,) at offsets ``tops``, ``lefts`` (B,), in Caffe space."""
        return crops_bgr_uint8_to_caffe(self.images, images, tops, lefts, self.crop_px)
