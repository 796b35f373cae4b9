"""Losses against hand computation in Caffe's convention."""

from __future__ import annotations

import math

import pytest
import torch

from e2e_recon.train import losses


def test_image_loss_is_caffe_euclidean() -> None:
    g = torch.Generator().manual_seed(0)
    fake = torch.randn(4, 3, 5, 5, generator=g)  # (B, 3, H, W)
    real = torch.randn(4, 3, 5, 5, generator=g)
    per_sample = losses.image_loss(fake, real)
    assert per_sample.shape == (4,)
    caffe = ((fake - real) ** 2).sum() / 2 / 4  # Caffe EuclideanLoss: sum / 2 / batch
    assert per_sample.mean().item() == pytest.approx(caffe.item(), rel=1e-6)
    assert per_sample[1].item() == pytest.approx(((fake[1] - real[1]) ** 2).sum().item() / 2)


def test_image_loss_is_float32_for_bf16_inputs() -> None:
    fake = torch.ones(2, 3, 2, 2, dtype=torch.bfloat16)
    out = losses.image_loss(fake, torch.zeros(2, 3, 2, 2, dtype=torch.bfloat16))
    assert out.dtype == torch.float32
    assert out.tolist() == [6.0, 6.0]


def test_feature_loss_sums_layers_and_detaches_real() -> None:
    fake = {"a": torch.ones(2, 4, requires_grad=True), "b": torch.full((2, 1, 2, 2), 2.0)}
    real = {"a": torch.zeros(2, 4, requires_grad=True), "b": torch.zeros(2, 1, 2, 2)}
    out = losses.feature_loss(fake, real, layers=("a", "b"))
    assert out.tolist() == [4 / 2 + 16 / 2, 4 / 2 + 16 / 2]
    out.sum().backward()
    assert real["a"].grad is None  # the real features are a target, not a path for gradients
    assert losses.feature_loss(fake, real, layers=("a",)).tolist() == [2.0, 2.0]


def test_adversarial_loss_is_softmax_cross_entropy() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    out = losses.adversarial_loss(logits, losses.REAL_LABEL)
    expected0 = -math.log(math.exp(2) / (math.exp(2) + 1))
    expected1 = -math.log(1 / (1 + math.e))
    assert out.tolist() == pytest.approx([expected0, expected1], rel=1e-6)
    fake = losses.adversarial_loss(logits, losses.FAKE_LABEL)
    assert fake[1].item() == pytest.approx(-math.log(math.e / (1 + math.e)), rel=1e-6)


def test_generator_total_weights_and_ablation() -> None:
    w = losses.LossWeights()
    assert (w.image, w.feature, w.adversarial) == (2e-6, 0.01, 100.0)
    img, feat, adv = (
        torch.tensor([1e6, 3e6]),
        torch.tensor([100.0, 300.0]),
        torch.tensor([0.5, 1.5]),
    )
    total = losses.generator_total(img, feat, adv, w)
    assert total.item() == pytest.approx(2e-6 * 2e6 + 0.01 * 200 + 100 * 1.0)
    no_feature = losses.LossWeights(feature=0.0)
    nan_feat = torch.tensor([float("nan"), 1.0])
    assert math.isfinite(losses.generator_total(img, nan_feat, adv, no_feature).item())


def test_warmup_ramps_feature_and_adversarial_only() -> None:
    base = losses.LossWeights()
    assert losses.weights_at(base, 0, 0) == base
    half = losses.weights_at(base, 4, 10)
    assert (half.image, half.feature, half.adversarial) == pytest.approx((2e-6, 0.005, 50.0))
    assert losses.weights_at(base, 50, 10) == base


def test_mean_image_weighting_survives_the_no_image_ablation() -> None:
    import math

    from e2e_recon.train.losses import LossWeights, normalised_weights

    on = normalised_weights(LossWeights(2e-6, 0.1, 0.01), 1e7, 1e5)
    assert on.feature == pytest.approx(0.1 * 2e-6 * 1e7 / 1e5)
    assert on.adversarial == pytest.approx(0.01 * 2e-6 * 1e7 / math.log(2.0))
    off = normalised_weights(LossWeights(0.0, 0.1, 0.01), 1e7, 1e5)
    assert off.image == 0.0
    assert (off.feature, off.adversarial) == pytest.approx((on.feature, on.adversarial))


def test_all_weights_zero_is_refused() -> None:
    from e2e_recon.config import load_config
    from e2e_recon.errors import ConfigError
    from e2e_recon.train.setup import loss_weights

    cfg = load_config(
        "demo", ["loss.image_weight=0", "loss.feature_weight=0", "loss.adversarial_weight=0"]
    )
    with pytest.raises(ConfigError, match="all 0"):
        loss_weights(cfg)
