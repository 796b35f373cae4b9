"""DeePSiM losses as small pure functions returning per-sample values.

Each function returns a float32 tensor of shape ``(B,)``; the training loop reduces
with ``.mean()``. The Euclidean losses follow Caffe's ``EuclideanLoss``
convention, sum of squared differences / (2 x batch): per sample that is the sum of
squares / 2, and the batch mean supplies the 1 / batch. With the published weights
(image 2e-6, feature 0.01, adversarial 100) the weighted total therefore matches the
reference training exactly. Everything is computed in float32, whatever precision
the networks ran in, so that the balance ratio does not depend on autocast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: Discriminator class indices (softmax over two logits): real = 0, generated = 1.
REAL_LABEL = 0
FAKE_LABEL = 1


def euclidean_per_sample(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Half the sum of squared differences per sample (Caffe Euclidean without 1/batch).

    Parameters
    ----------
    a, b : torch.Tensor
        Same shape ``(B, ...)``.

    Returns
    -------
    torch.Tensor
        ``(B,)`` float32.
    """
    diff = a.float() - b.float()  # (B, ...)
    return diff.pow(2).flatten(1).sum(dim=1) / 2.0


def image_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Image (pixel) loss between generated and real crops, per sample.

    Parameters
    ----------
    fake, real : torch.Tensor
        ``(B, 3, H, W)`` in Caffe space.

    Returns
    -------
    torch.Tensor
        ``(B,)`` float32; ``.mean()`` is Caffe's EuclideanLoss.
    """
    return euclidean_per_sample(fake, real)


def feature_loss(
    fake_features: Mapping[str, torch.Tensor],
    real_features: Mapping[str, torch.Tensor],
    layers: Sequence[str] = ("pool5",),
) -> torch.Tensor:
    """Comparator feature loss summed over ``layers``, per sample.

    Parameters
    ----------
    fake_features, real_features : mapping of str to torch.Tensor
        Comparator outputs by layer name, each ``(B, C, h, w)`` or ``(B, D)``.
    layers : sequence of str
        Layers that enter the loss (published: ``("pool5",)``).

    Returns
    -------
    torch.Tensor
        ``(B,)`` float32.
    """
    total = None
    for name in layers:
        term = euclidean_per_sample(fake_features[name], real_features[name].detach())
        total = term if total is None else total + term
    if total is None:
        raise ValueError("feature_loss needs at least one layer name")
    return total


def adversarial_loss(logits: torch.Tensor, label: int) -> torch.Tensor:
    """Softmax cross-entropy of discriminator logits against one class, per sample.

    Parameters
    ----------
    logits : torch.Tensor
        ``(B, 2)`` discriminator outputs.
    label : int
        :data:`REAL_LABEL` (0) or :data:`FAKE_LABEL` (1).

    Returns
    -------
    torch.Tensor
        ``(B,)`` float32.
    """
    target = torch.full((logits.shape[0],), label, dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), target, reduction="none")


@dataclass(frozen=True)
class LossWeights:
    """Weights of the generator's three losses (published: 2e-6, 0.01, 100)."""

    image: float = 2e-6
    feature: float = 0.01
    adversarial: float = 100.0


def weights_at(base: LossWeights, iteration: int, warmup_iters: int) -> LossWeights:
    """Loss weights at ``iteration`` with a linear warm-up of feature and adversarial weights.

    With ``warmup_iters == 0`` (the published recipe) the base weights are returned.
    """
    if warmup_iters <= 0:
        return base
    ramp = min(1.0, (iteration + 1) / warmup_iters)
    return LossWeights(base.image, base.feature * ramp, base.adversarial * ramp)


#: The image-loss weight of the published recipe (Caffe convention).
PUBLISHED_IMAGE_WEIGHT = 2e-6


def normalised_weights(
    base: LossWeights, image_at_mean: float, feature_at_mean: float
) -> LossWeights:
    """Weights with feature and adversarial terms expressed relative to the image term.

    ``loss.weighting: mean_image``: the configured feature and adversarial weights are
    read as fractions of the weighted image loss of the mean training image (with the
    published image weight when the image term is switched off), so that
    ``feature = 0.1`` makes the feature term 10% of the image term at that point
    (the constant output every generator passes through early in training). The
    adversarial reference is ln 2, its value for an undecided discriminator.

    Parameters
    ----------
    base : LossWeights
        ``image`` is absolute; ``feature`` and ``adversarial`` are fractions.
    image_at_mean, feature_at_mean : float
        Unweighted per-sample losses of the mean image (see ``train.priors``).
    """
    # With the image term switched off (an ablation), the other terms keep the size they
    # have beside the published image weight instead of vanishing with it.
    reference = (base.image or PUBLISHED_IMAGE_WEIGHT) * image_at_mean
    feature = base.feature * reference / feature_at_mean if feature_at_mean > 0 else 0.0
    return LossWeights(base.image, feature, base.adversarial * reference / math.log(2.0))


def generator_total(
    image: torch.Tensor, feature: torch.Tensor, adversarial: torch.Tensor, weights: LossWeights
) -> torch.Tensor:
    """Weighted generator objective, a scalar: sum of weighted batch means.

    A term whose weight is 0 is left out entirely (an ablation switch), so that a
    non-finite value in a switched-off term cannot leak into the gradient.
    """
    total = torch.zeros((), dtype=torch.float32, device=image.device)
    for weight, term in (
        (weights.image, image),
        (weights.feature, feature),
        (weights.adversarial, adversarial),
    ):
        if weight != 0.0:
            total = total + weight * term.mean()
    return total
