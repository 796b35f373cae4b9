"""Training batches: the order of the samples (``data.sampling``) and presentation averaging.

``data.sampling: epoch`` reads the samples in one fixed shuffled order, wrapping
around at the end, as the published training read its LMDB (written once in a
shuffled order); :class:`EpochOrder` holds that order and the read position.
``random`` draws each batch uniformly with replacement.

Presentation averaging (``train.presentation_average_k``):

Single-trial training throws away the repeat structure of the data: each image was
shown several times. :class:`PresentationAveragingSampler` makes each training
sample the mean of ``k`` distinct, randomly chosen presentations of one image,
multiplied by ``sqrt(k)`` (the same scaling the test-time procedure applies to
trial averages), so the generator sees inputs with the noise level and scale it
meets at test time as well as single trials' worth of variety. Every random draw
comes from the one ``torch.Generator`` the loop passes in, so a resumed run draws
exactly the same batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from e2e_recon.data.sampler import CropSampler
from e2e_recon.errors import CheckpointError


class PresentationAveragingSampler:
    """Random batches whose voxel patterns average ``k`` presentations of their image.

    Parameters
    ----------
    training_set : data.dataset.TrainingSet
        Its ``image_index`` tells which samples are presentations of the same image.
    crop_px : int
        Random crop side, as in :class:`~e2e_recon.data.dataset.CropSampler`.
    k : int
        Presentations averaged per sample (an image with fewer uses all it has, and the
        scale follows the number actually averaged).
    prob : float
        Probability that a sample is averaged; otherwise it stays one presentation.
    device : torch.device, optional
        Where the set is held and batches are made, as in ``CropSampler`` (the draws
        stay on the CPU, so the batches do not depend on it).
    """

    def __init__(
        self,
        training_set: Any,
        crop_px: int,
        k: int,
        prob: float = 1.0,
        device: torch.device | None = None,
    ) -> None:
        self.crops_from = CropSampler(training_set, crop_px, device)
        self.k, self.prob = int(k), float(prob)
        index = np.asarray(training_set.image_index, dtype=np.int64)  # (N,)
        counts = np.bincount(index, minlength=int(index.max()) + 1)  # (M,)
        order = np.argsort(index, kind="stable")
        # presentations[i, j]: row of the j-th presentation of image i; -1 pads.
        table = np.full((counts.size, int(counts.max())), -1, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        for image, (start, count) in enumerate(zip(starts, counts, strict=True)):
            table[image, :count] = order[start : start + count]
        self.presentations = torch.from_numpy(table)  # (M, R_max)
        self.counts = torch.from_numpy(counts)  # (M,)

    def __len__(self) -> int:
        return len(self.crops_from)

    def sample(
        self, batch_size: int, generator: torch.Generator, rows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``batch_size`` samples (images weighted by their presentation count).

        ``rows`` (B,), when given, are the samples whose images are used (their other
        presentations are still chosen at random).

        Returns
        -------
        voxels : Tensor, shape (B, V), float32
            ``sqrt(n) * mean`` of ``n = min(k, presentations)`` distinct presentations
            (``n = 1`` for the samples left single by ``prob``).
        crops : Tensor, shape (B, 3, crop, crop), float32, Caffe space
        """
        base = self.crops_from
        rows, crops = base.draw(batch_size, generator, rows)  # (B,), (B, 3, crop, crop)
        chosen, n_used = self.choose_presentations(base.image_index[rows], generator)
        chosen, n_used = chosen.to(base.device), n_used.to(base.device)  # drawn on the CPU
        picked = base.voxels[chosen.clamp(min=0)]  # (B, R_max, V)
        mask = (chosen >= 0).unsqueeze(-1).to(picked.dtype)  # (B, R_max, 1)
        voxels = (picked * mask).sum(dim=1) / n_used.sqrt().unsqueeze(-1)  # sqrt(n) * mean
        return voxels, crops

    def choose_presentations(
        self, images: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of the presentations averaged for each image (-1 = unused) and their count.

        Returns
        -------
        chosen : Tensor, shape (B, R_max), int64
        n_used : Tensor, shape (B,), float32
        """
        table = self.presentations[images]  # (B, R_max)
        keys = torch.rand(table.shape, generator=generator)  # a random order per sample
        keys[table < 0] = 2.0  # padding sorts last
        order = keys.argsort(dim=1)
        shuffled = table.gather(1, order)  # valid presentations first, in random order
        averaged = torch.rand(len(images), generator=generator) < self.prob  # (B,)
        n_used = torch.where(averaged, self.counts[images].clamp(max=self.k), 1)  # (B,)
        slots = torch.arange(table.shape[1]).unsqueeze(0)  # (1, R_max)
        chosen = torch.where(slots < n_used.unsqueeze(1), shuffled, -1)
        return chosen, n_used.float()


def make_sampler(
    training_set: Any,
    crop_px: int,
    k: int,
    prob: float = 1.0,
    device: torch.device | None = None,
) -> Any:
    """The published :class:`CropSampler` for ``k == 1``, else presentation averaging.

    ``device`` is where the set is held and batches are made (default CPU; see
    :func:`e2e_recon.data.sampler.choose_data_device`).
    """
    if k <= 1:
        return CropSampler(training_set, crop_px, device)
    return PresentationAveragingSampler(training_set, crop_px, k, prob, device)


SAMPLING_MODES = ("random", "epoch")


class EpochOrder:
    """One fixed shuffled order of the training samples, read in order and wrapped.

    The order depends on the seed only, so a resumed run rebuilds it and needs just
    :attr:`position` (:meth:`state_dict`). Under torchrun every rank holds the same
    order and reads its own consecutive share of each global batch.

    Parameters
    ----------
    n_samples : int
        Training samples (rows of the voxel matrix).
    seed : int
        Seed of the order (a stream of its own: the run's other draws do not move it).
    """

    def __init__(self, n_samples: int, seed: int) -> None:
        self.n_samples = int(n_samples)
        generator = torch.Generator().manual_seed(int(seed))
        self.order = torch.randperm(self.n_samples, generator=generator)  # (N,)
        self.position = 0

    def next_rows(self, batch_size: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
        """Rows of this rank's share of the next global batch; advance by the global batch.

        Returns
        -------
        Tensor, shape (batch_size,), int64
        """
        total = batch_size * world_size
        slots = (self.position + torch.arange(total)) % self.n_samples  # (B * world,)
        self.position = (self.position + total) % self.n_samples
        return self.order[slots[rank * batch_size : (rank + 1) * batch_size]]

    def state_dict(self) -> dict[str, int]:
        """The read position (and the sample count it belongs to)."""
        return {"position": self.position, "n_samples": self.n_samples}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved position.

        Raises
        ------
        CheckpointError
            When the snapshot's training set had another number of samples.
        """
        if int(state["n_samples"]) != self.n_samples:
            raise CheckpointError(
                f"the snapshot read {state['n_samples']} training samples in its epoch order, "
                f"this run has {self.n_samples}: resume with the same data.train_fmri, "
                "data.train_images and validation split"
            )
        self.position = int(state["position"]) % self.n_samples
