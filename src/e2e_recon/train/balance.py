"""The published rule that balances generator and discriminator training.

After every iteration the ratio

    r = (D loss on real + D loss on fake) / (D loss on fake with label "real")

is computed from the unweighted losses of that iteration, and three rules are
applied in this order, each seeing the state left by the previous one:

1. r < stop_d_below and D is training: stop training D, train G;
2. r > resume_d_above and D is not training: train both;
3. r > stop_g_above and G is training: stop training G, train D.

A small discriminator loss relative to the generator's adversarial loss means D
is winning, so D pauses; a large ratio means G is winning, so G pauses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class BalanceThresholds:
    """Thresholds of the balance rule (published: 0.1, 0.5, 10)."""

    stop_d_below: float = 0.1
    resume_d_above: float = 0.5
    stop_g_above: float = 10.0


@dataclass(frozen=True)
class BalanceState:
    """Which networks are being trained in the next iteration."""

    train_d: bool = True
    train_g: bool = True

    def to_dict(self) -> dict[str, bool]:
        """Plain dict for checkpoints."""
        return {"train_d": self.train_d, "train_g": self.train_g}

    @classmethod
    def from_dict(cls, raw: dict[str, bool]) -> BalanceState:
        """Inverse of :meth:`to_dict`."""
        return cls(train_d=bool(raw["train_d"]), train_g=bool(raw["train_g"]))


def balance_ratio(d_real: float, d_fake: float, g_adversarial: float) -> float:
    """The ratio r of the balance rule from unweighted batch-mean losses.

    Parameters
    ----------
    d_real, d_fake : float
        Discriminator cross-entropy on real images (label real) and on generated
        images (label generated).
    g_adversarial : float
        Cross-entropy of the discriminator on generated images with label real.

    Returns
    -------
    float
        ``(d_real + d_fake) / g_adversarial``; ``inf`` when the denominator is 0.
    """
    numerator = float(d_real) + float(d_fake)
    denominator = float(g_adversarial)
    if denominator == 0.0:
        return math.inf if numerator > 0 else 1.0
    return numerator / denominator


def update_balance(
    state: BalanceState, ratio: float, thresholds: BalanceThresholds = BalanceThresholds()
) -> BalanceState:
    """Apply the three rules, in the published order, to ``state``.

    Parameters
    ----------
    state : BalanceState
        State during the iteration that produced ``ratio``.
    ratio : float
        From :func:`balance_ratio`.
    thresholds : BalanceThresholds

    Returns
    -------
    BalanceState
        State for the next iteration.
    """
    train_d, train_g = state.train_d, state.train_g
    if ratio < thresholds.stop_d_below and train_d:
        train_d, train_g = False, True
    if ratio > thresholds.resume_d_above and not train_d:
        train_d, train_g = True, True
    if ratio > thresholds.stop_g_above and train_g:
        train_d, train_g = True, False
    return BalanceState(train_d=train_d, train_g=train_g)
