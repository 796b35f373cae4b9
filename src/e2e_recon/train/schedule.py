"""Learning-rate schedules that count their own network's updates, as Caffe solvers do.

In the published training each network has its own Caffe solver, and a solver's
iteration counter advances only when that solver steps. With the "multistep" policy
the rate after ``n`` updates is ``base_lr x gamma^k``, ``k`` the number of milestones
``<= n`` (REFERENCE.md, "Optimiser"). While the balance rule pauses a network, its
counter and so its rate stand still: the discriminator's rate halves after 300k of
its *own* updates, not after 300k iterations of the loop.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from e2e_recon.errors import CheckpointError


class SolverSchedule:
    """Multistep learning rate driven by the number of updates of one optimiser.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Its parameter groups' current ``lr`` values are the base rates.
    milestones : iterable of int
        Update counts after which the rate is multiplied by ``gamma``.
    gamma : float
        Factor per milestone (0.5 published).
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, milestones: Iterable[int], gamma: float = 0.5
    ) -> None:
        self.optimizer = optimizer
        self.milestones = tuple(sorted(int(m) for m in milestones))
        self.gamma = float(gamma)
        self.base_lrs = [float(group["lr"]) for group in optimizer.param_groups]
        self.updates = 0
        self._apply()

    def factor(self) -> float:
        """``gamma`` to the number of milestones reached by :attr:`updates`."""
        return self.gamma ** bisect.bisect_right(self.milestones, self.updates)

    def lr(self) -> float:
        """The rate of the first parameter group for the network's next update."""
        return float(self.optimizer.param_groups[0]["lr"])

    def step(self) -> None:
        """Count one update of the optimiser (call after ``optimizer.step()``)."""
        self.updates += 1
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        """Plain values: the update counter and the schedule it was counted against."""
        return {"updates": self.updates, "milestones": list(self.milestones), "gamma": self.gamma}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the update counter (from this class, or a ``MultiStepLR`` state dict).

        A ``MultiStepLR`` state (snapshots written before the counters were per network)
        counted loop iterations; its ``last_epoch`` is taken as the update count.

        Raises
        ------
        CheckpointError
            When ``state`` holds neither ``updates`` nor ``last_epoch``.
        """
        if "updates" in state:
            self.updates = int(state["updates"])
        elif "last_epoch" in state:
            self.updates = max(int(state["last_epoch"]), 0)
        else:
            raise CheckpointError(
                f"learning-rate schedule state with keys {sorted(state)} has no update "
                "counter ('updates'); resume from a snapshot written by e2e-recon train"
            )
        self._apply()

    def set_base_lr(self, group: int, lr: float) -> None:
        """Set one parameter group's base rate (the milestones still scale it)."""
        self.base_lrs[group] = float(lr)
        self._apply()

    def _apply(self) -> None:
        scale = self.factor()
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * scale


def is_legacy_state(state: Mapping[str, Any]) -> bool:
    """True for a ``MultiStepLR`` state dict (the counter there counted loop iterations)."""
    return "updates" not in state and "last_epoch" in state
