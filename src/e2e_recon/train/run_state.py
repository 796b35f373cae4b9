"""What one training process holds: networks, optimisers, data, counters.

One :class:`RunState` is built by ``loop.train`` and passed to every step of the
loop and to :mod:`e2e_recon.train.resume`, which writes and restores it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from e2e_recon.config import Config
from e2e_recon.train import distributed
from e2e_recon.train.balance import BalanceState
from e2e_recon.train.ema import GeneratorEMA
from e2e_recon.train.losses import LossWeights
from e2e_recon.train.sampling import EpochOrder
from e2e_recon.train.stats import GridPatterns
from e2e_recon.train.step import Nets, Optimisers, StepSettings
from e2e_recon.train.validation import BestTracker, Validator


@dataclass
class RunState:
    """Everything one training process holds."""

    cfg: Config
    run_dir: Path
    info: distributed.DistInfo
    nets: Nets
    opt: Optimisers
    sampler: Any  # data.dataset.CropSampler or sampling.PresentationAveragingSampler
    norm: dict[str, Any]
    settings: StepSettings
    grid: GridPatterns | None
    batch_per_rank: int
    sample_generator: torch.Generator
    weights: LossWeights  # absolute weights before warm-up
    validator: Validator | Any = None  # train.shared.SharedValidator for several subjects
    order: EpochOrder | None = None  # data.sampling: epoch
    ema: GeneratorEMA | None = None  # rank 0 only: the others never save or evaluate
    best: BestTracker = field(default_factory=BestTracker)
    balance: BalanceState = field(default_factory=BalanceState)
    iteration: int = 0
    early_stopped: bool = False
    precision: dict[str, Any] = field(default_factory=dict)  # PrecisionChoice.to_dict()
    adapt: Any = None  # train.adapt.AdaptStages when adapting a source generator
