"""Exponential moving average (EMA) of the generator weights.

Not part of the published method (``train.ema_decay: 0``, the default, keeps it off).
A GAN generator's weights keep moving with the discriminator: two snapshots a few
hundred iterations apart can differ by several points of identification accuracy on
a small test set. The average of the recent weights is a steadier model, and usually
a better one (Yazici et al. 2019, "The unusual effectiveness of averaging in GAN
training"). With the EMA on, every generator that leaves training (``generator.pt``,
``best.pt``, snapshots read by ``reconstruct``, the training grids, validation) uses
the averaged weights; the optimiser keeps training the raw ones.

Early on the average would be dominated by the random initial weights, so the decay
starts low and rises to ``decay``: ``min(decay, (1 + n) / (10 + n))`` after ``n``
updates (as TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from e2e_recon.train.checkpoint import module_state

__all__ = ["GeneratorEMA"]


class GeneratorEMA:
    """A float32 copy of a module whose parameters follow an exponential moving average.

    Parameters
    ----------
    module : nn.Module
        The network being trained (the plain module, not a DDP or compiled wrapper).
    decay : float
        Weight of the old average at each update, in (0, 1); e.g. 0.999 averages over
        about the last 1,000 iterations.

    Attributes
    ----------
    averaged : nn.Module
        The averaged network, in eval mode, never trained directly.
    updates : int
        Number of :meth:`update` calls so far.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.averaged = copy.deepcopy(module).float().eval()
        self.averaged.requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next update uses (lower for the first updates)."""
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Move the average towards ``module``'s current weights; copy its buffers."""
        weight = 1.0 - self.current_decay()
        pairs = zip(self.averaged.parameters(), module.parameters(), strict=True)
        for mine, theirs in pairs:
            mine.lerp_(theirs.detach().float(), weight)  # mine += weight * (theirs - mine)
        for buffer, source in zip(self.averaged.buffers(), module.buffers(), strict=True):
            buffer.copy_(source)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights (on the CPU) and the update count, for checkpoints."""
        return {
            "weights": module_state(self.averaged),
            "updates": self.updates,
            "decay": self.decay,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict` (the decay of the current config is kept)."""
        self.averaged.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
