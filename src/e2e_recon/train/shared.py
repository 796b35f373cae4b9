"""Shared training (``model.shared``): several subjects, one generator.

Each subject's training file is loaded on its own (voxels z-scored with that subject's
statistics; the validation images chosen with the run's seed, so subjects who saw the same
images hold out the same ones and no validation image is trained on through another
subject). The generator is a :class:`~e2e_recon.nets.shared.StackedGenerator`: a sample
fills its subject's voxel block of the input and leaves the others zero.

Batches (``train.subject_mix``):

- ``equal``: each batch is split equally between the subjects, whatever their sample
  counts (``B // S`` each; the ``B % S`` left over go to subjects drawn at random), so a
  subject with few samples still shapes every update of the shared layers;
- ``proportional``: each sample drawn uniformly from all subjects' samples.

Validation scores every subject's validation split; the run's figure (``best.pt``,
early stopping) is the mean over subjects, and each subject's figures are logged as
``val_<subject>/<metric>`` in ``stats.jsonl``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from e2e_recon.config import Config
from e2e_recon.errors import ConfigError
from e2e_recon.nets.shared import StackedGenerator
from e2e_recon.train.multi_config import subject_files
from e2e_recon.train.priors import first_linear, init_weight_rows
from e2e_recon.train.stats import GridPatterns
from e2e_recon.train.validation import Validator


@dataclass
class SharedData:
    """Every subject's training set of a shared run, in block order."""

    subjects: list[str]
    sets: list[Any]  # data.dataset.TrainingSet, one per subject

    @property
    def voxel_counts(self) -> list[int]:
        return [int(s.voxels.shape[1]) for s in self.sets]

    @property
    def n_samples(self) -> int:
        return sum(len(s.voxels) for s in self.sets)

    def blocks(self) -> list[slice]:
        """Each subject's columns of the stacked input."""
        edges = np.concatenate([[0], np.cumsum(self.voxel_counts)])
        return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]

    def stacked(self, index: int, voxels: np.ndarray) -> np.ndarray:
        """(K, V_s) patterns of subject ``index`` -> (K, sum V) float32 stacked input."""
        out = np.zeros((len(voxels), sum(self.voxel_counts)), dtype=np.float32)
        out[:, self.blocks()[index]] = voxels
        return out

    def norm(self) -> dict[str, Any]:
        """The statistics every subject's test patterns are z-scored with, by subject."""
        pairs = zip(self.subjects, self.sets, strict=True)
        return {"subjects": {name: data.norm.to_dict() for name, data in pairs}}


def load_shared_data(cfg: Config) -> SharedData:
    """Load every subject's training set with the run's data settings."""
    from e2e_recon.train.setup import load_data

    subjects, sets = [], []
    for name, path in subject_files(cfg):
        sets.append(load_data(replace(cfg, data=replace(cfg.data, train_fmri=path))))
        subjects.append(name)
    sizes = {s.images.shape[1:] for s in sets}
    if len(sizes) > 1:  # one config: only a corrupt cache could do this
        raise ConfigError(f"the subjects' images differ in size {sorted(sizes)}")
    return SharedData(subjects, sets)


def build_shared_generator(cfg: Config, shared: SharedData, colour: str) -> StackedGenerator:
    """The run's stacked generator (random He weights, drawn by the caller)."""
    m = cfg.model
    return StackedGenerator(
        shared.subjects, shared.voxel_counts, fc_width=m.fc_width,
        output_size_px=m.output_size_px, base_channels=m.base_channels,
        leaky_slope=m.leaky_slope, colour=colour,
    )  # fmt: skip


def init_shared_first_layer(
    generator: nn.Module, shared: SharedData, method: str, crop_px: int
) -> int:
    """``model.first_layer_init`` for each subject's input block from its own data."""
    if method == "random":
        return 0
    weight = first_linear(generator).weight  # (F, sum V)
    return sum(
        init_weight_rows(weight[:, block], data, method, crop_px)
        for block, data in zip(shared.blocks(), shared.sets, strict=True)
    )


class SubjectMixSampler:
    """Batches mixing subjects by ``train.subject_mix`` (stacked voxels, crops).

    Parameters
    ----------
    samplers : sequence
        One :func:`~e2e_recon.train.sampling.make_sampler` sampler per subject.
    shared : SharedData
        The subjects' blocks.
    mix : {"equal", "proportional"}
    """

    def __init__(self, samplers: Sequence[Any], shared: SharedData, mix: str) -> None:
        self.samplers = list(samplers)
        self.blocks = shared.blocks()
        self.width = sum(shared.voxel_counts)
        self.mix = mix
        self.counts = torch.tensor([len(s) for s in self.samplers], dtype=torch.float64)

    def __len__(self) -> int:
        return int(self.counts.sum())

    def shares(self, batch_size: int, generator: torch.Generator) -> list[int]:
        """Samples of each subject in a batch of ``batch_size``."""
        n = len(self.samplers)
        if self.mix == "proportional":
            picks = torch.multinomial(
                self.counts, batch_size, replacement=True, generator=generator
            )  # (B,) subjects in proportion to their samples
            return torch.bincount(picks, minlength=n).tolist()
        shares = torch.full((n,), batch_size // n, dtype=torch.int64)
        extra = torch.randperm(n, generator=generator)[: batch_size % n]  # the remainder
        shares[extra] += 1
        return shares.tolist()

    def sample(
        self, batch_size: int, generator: torch.Generator, rows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw one batch: ``(B, sum V)`` stacked voxels and ``(B, 3, crop, crop)`` crops."""
        if rows is not None:
            raise ConfigError("a shared run draws its batches at random (data.sampling=random)")
        voxels, crops = [], []
        for index, count in enumerate(self.shares(batch_size, generator)):
            if count == 0:
                continue
            v, c = self.samplers[index].sample(count, generator)  # (n, V_s), (n, 3, c, c)
            block = v.new_zeros((count, self.width))  # (n, sum V)
            block[:, self.blocks[index]] = v
            voxels.append(block)
            crops.append(c)
        return torch.cat(voxels), torch.cat(crops)


class SharedValidator:
    """Every subject's validation split; the mean over subjects and each subject's figures."""

    def __init__(self, shared: SharedData, crop_px: int, layers: tuple[str, ...]) -> None:
        self.validators = {
            name: Validator(replace(data.val, voxels=shared.stacked(i, data.val.voxels)),
                            crop_px, layers)
            for i, (name, data) in enumerate(zip(shared.subjects, shared.sets, strict=True))
            if data.val is not None and len(data.val.voxels) >= 2
        }  # fmt: skip

    def __len__(self) -> int:
        return sum(len(v) for v in self.validators.values())

    def evaluate(self, generator: nn.Module, comparator: nn.Module, *args: Any) -> dict[str, Any]:
        """Scores averaged over subjects, plus ``<subject>/<metric>`` for each subject."""
        per = {n: v.evaluate(generator, comparator, *args) for n, v in self.validators.items()}
        out: dict[str, Any] = {}
        for key in next(iter(per.values())):
            values = [float(p[key]) for p in per.values() if key in p]
            out[key] = float(np.mean(values))
        for name, scores in per.items():
            out |= {f"{name}/{key}": value for key, value in scores.items()}
        return out


def shared_grid(cfg: Config, shared: SharedData) -> GridPatterns:
    """Progress-grid patterns: the first subject's training patterns (stacked)."""
    first = shared.sets[0]
    grid = GridPatterns.from_data(replace(cfg, data=replace(cfg.data, test_fmri=())), first)
    sets = [(n, torch.from_numpy(shared.stacked(0, v.numpy())), s) for n, v, s in grid.sets]
    return GridPatterns(sets=sets, crop_px=grid.crop_px)
