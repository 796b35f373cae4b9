"""``train.precision: auto`` decided by timing the run's own training step.

A generic probe (a few wide layers) does not resemble the step: on one machine its
bf16/fp32 ratio wandered around the threshold while the paper step's was 0.37. So
the run's step itself is timed: copies of the run's networks (the same layers,
weights and memory layout), fresh optimisers for them, a batch of the run's size and
crop, the run's loss terms; fp32 and bf16 autocast interleaved (see
:func:`e2e_recon.device.measure_step`). The copies are thrown away and the step runs
under a forked random stream, so the run's weights, optimiser state and random
streams are exactly as they would be without the measurement.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import time
from pathlib import Path

import torch
from torch import nn

from e2e_recon.config import Config
from e2e_recon.device import PrecisionChoice, StepTimer, choose_precision
from e2e_recon.train import distributed
from e2e_recon.train.balance import BalanceState
from e2e_recon.train.losses import LossWeights
from e2e_recon.train.step import (
    Nets,
    NonFiniteLoss,
    StepSettings,
    build_optimisers,
    training_step,
    uses_adversarial,
)

__all__ = ["choose_run_precision", "step_signature", "step_timer"]


def choose_run_precision(
    cfg: Config,
    nets: Nets,
    batch: int,
    device: torch.device,
    info: distributed.DistInfo | None = None,
    cache_path: Path | None = None,
    remeasure: bool = False,
) -> PrecisionChoice:
    """The precision for ``cfg.train.precision`` on ``device``, measured on the run's step.

    Parameters
    ----------
    cfg : Config
    nets : Nets
        The run's networks; only copies of them are run.
    batch : int
        Samples per step in this process.
    info : DistInfo, optional
        With several processes, rank 0 measures and every rank takes its verdict.
    """
    info = info or distributed.DistInfo()
    measures = cfg.train.precision == "auto" and device.type == "cpu"
    if measures and info.is_distributed and not info.is_main:
        choice = PrecisionChoice(torch.float32, "auto", "rank 0's measurement")
    else:
        choice = choose_precision(
            cfg.train.precision,
            device,
            step_timer(cfg, nets, batch, device) if measures else None,
            step_signature(cfg, nets, batch),
            cache_path,
            remeasure,
        )
    if measures and info.is_distributed:  # every rank takes rank 0's verdict
        bf16 = float(info.is_main and choice.dtype == torch.bfloat16)
        if distributed.mean_across_ranks([bf16], info)[0] > 0:
            choice = PrecisionChoice(torch.bfloat16, "auto", choice.how)
    return choice


def step_signature(cfg: Config, nets: Nets, batch: int) -> str:
    """What sets the step's speed: every parameter shape, batch, crop, layers, loss terms."""
    shapes = [
        (name, tuple(p.shape), p.requires_grad)
        for net in (nets.generator, nets.discriminator, nets.comparator)
        for name, p in net.named_parameters()
    ]
    described = repr((
        shapes, batch, cfg.data.crop_px, tuple(cfg.model.feature_layers),
        cfg.loss.feature_weight != 0.0, cfg.loss.image_weight != 0.0, uses_adversarial(cfg),
        cfg.train.channels_last, cfg.model.input_dropout > 0.0,
    ))  # fmt: skip
    digest = hashlib.sha256(described.encode()).hexdigest()[:16]
    return f"train-step|b{batch}|{cfg.data.crop_px}px|{digest}"


def step_timer(cfg: Config, nets: Nets, batch: int, device: torch.device) -> StepTimer:
    """``step(dtype) -> seconds``: one full training iteration (D and G) on copies of ``nets``.

    Eager (no ``torch.compile``, no DDP): the copies are the plain modules. The batch is
    drawn from its own generator, the step runs under a forked random stream.
    """
    plain = [copy.deepcopy(n) for n in (nets.generator, nets.discriminator, nets.comparator)]
    g, d, c = plain
    probe = Nets(g, d, c, g, d, d, c)
    opt = build_optimisers(cfg, probe, device)
    n_voxels = next(m for m in g.modules() if isinstance(m, nn.Linear)).in_features
    draw = torch.Generator().manual_seed(0)
    crop = cfg.data.crop_px
    voxels = torch.randn(batch, n_voxels, generator=draw).to(device)  # (B, V)
    real = torch.rand(batch, 3, crop, crop, generator=draw) * 255 - 117  # (B, 3, crop, crop)
    layout = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    real = real.to(device).contiguous(memory_format=layout)
    loss = cfg.loss  # which terms are computed is what matters, not their scale
    weights = LossWeights(loss.image_weight, loss.feature_weight, loss.adversarial_weight)
    both = BalanceState(train_d=True, train_g=True)

    def step(dtype: torch.dtype) -> float:
        settings = StepSettings(
            crop, tuple(cfg.model.feature_layers), device, dtype, cfg.model.input_dropout,
            adversarial=uses_adversarial(cfg),
        )  # fmt: skip
        with torch.random.fork_rng(devices=[]):
            started = time.perf_counter()
            # Throwaway weights that diverge still give the step's time.
            with contextlib.suppress(NonFiniteLoss):
                training_step(probe, opt, voxels, real, both, weights, settings)
            return time.perf_counter() - started

    return step
