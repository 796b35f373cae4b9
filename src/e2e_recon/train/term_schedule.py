"""The adversarial and feature terms every k-th iteration only (not in the published method).

``train.adversarial_every_iters`` and ``train.feature_every_iters`` (1 = every iteration, as
published): in an iteration where a term is due it is weighted k times, so that its mean
weight over iterations is the configured one; where it is not due its weight is 0, and the
network behind it does not run (the discriminator's step and pass, or the comparator's two
passes). The generator trains on the other terms in every iteration. The decision depends
on the iteration number only, so a resumed run makes the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from e2e_recon.config import Config
from e2e_recon.train.losses import LossWeights

#: Logged values that come from the adversarial term (the discriminator's losses and G's).
ADVERSARIAL_LOGGED = ("adversarial", "d_real", "d_fake", "loss_d")
#: Logged values that come from the feature term.
FEATURE_LOGGED = ("feature",)


@dataclass(frozen=True)
class TermSchedule:
    """Which iterations run the adversarial and the feature term.

    Parameters
    ----------
    adversarial_every, feature_every : int
        Run the term in iterations 0, k, 2k, ... (1: every iteration).
    """

    adversarial_every: int = 1
    feature_every: int = 1

    @classmethod
    def from_config(cls, cfg: Config) -> TermSchedule:
        """The schedule of ``train.adversarial_every_iters`` and ``train.feature_every_iters``."""
        return cls(cfg.train.adversarial_every_iters, cfg.train.feature_every_iters)

    def adversarial_due(self, iteration: int) -> bool:
        """Whether ``iteration`` runs the discriminator and the adversarial term."""
        return iteration % max(self.adversarial_every, 1) == 0

    def feature_due(self, iteration: int) -> bool:
        """Whether ``iteration`` runs the comparator and the feature term."""
        return iteration % max(self.feature_every, 1) == 0

    def weights(self, weights: LossWeights, iteration: int) -> LossWeights:
        """The loss weights of ``iteration``: a due term x its k, a term not due 0."""
        if self.adversarial_every <= 1 and self.feature_every <= 1:
            return weights
        adversarial = weights.adversarial * self.adversarial_every
        feature = weights.feature * self.feature_every
        return LossWeights(
            weights.image,
            feature if self.feature_due(iteration) else 0.0,
            adversarial if self.adversarial_due(iteration) else 0.0,
        )


def has_a_term(weights: LossWeights) -> bool:
    """Whether the generator has anything to learn from in an iteration with these weights.

    Only with the image loss switched off (an ablation) can an iteration have no term due;
    the generator then does not step in it.
    """
    return weights.image != 0.0 or weights.feature != 0.0 or weights.adversarial != 0.0


@dataclass
class LastMeasured:
    """The last measured values of the terms an iteration left out, for its log row.

    An iteration without a term reports zeros for it; the log and the run's summary show
    the value the term had when it last ran instead (none before it first ran).
    """

    values: dict[str, float] = field(default_factory=dict)

    def fill(self, row: dict[str, float], adversarial: bool, feature: bool) -> dict[str, float]:
        """``row`` with each left-out term's values replaced by the last measured ones."""
        for ran, names in ((adversarial, ADVERSARIAL_LOGGED), (feature, FEATURE_LOGGED)):
            if ran:
                self.values.update({name: row[name] for name in names})
            else:
                row = row | {name: self.values[name] for name in names if name in self.values}
        return row
