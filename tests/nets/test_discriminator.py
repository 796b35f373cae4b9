"""The discriminator: published shapes, input sizes, dropout only in training."""

from __future__ import annotations

import pytest
import torch

from e2e_recon.errors import ConfigError
from e2e_recon.nets.discriminator import Discriminator, conv_output_size


def test_published_shapes():
    assert conv_output_size(227) == 11  # Caffe's Dpool5 kernel
    discriminator = Discriminator().eval()
    with torch.no_grad():
        logits = discriminator(torch.randn(2, 3, 227, 227))
    assert logits.shape == (2, 2)
    names = [key.rsplit(".", 1)[0] for key in discriminator.state_dict()][::2]
    assert names == ["Dconv1", "Dconv2", "Dconv3", "Dconv4", "Dconv5", "Dfc6", "Dfc7"]


def test_smaller_inputs_and_too_small_input():
    discriminator = Discriminator(input_size_px=64)
    assert discriminator(torch.randn(1, 3, 64, 64)).shape == (1, 2)
    assert discriminator.arch_kwargs() == {"input_size_px": 64}
    with pytest.raises(ConfigError, match="input_size_px=40"):
        Discriminator(input_size_px=40)


def test_dropout_only_in_training_and_gradients_reach_the_image():
    torch.manual_seed(0)
    discriminator = Discriminator(input_size_px=64)
    images = torch.randn(4, 3, 64, 64, requires_grad=True)
    discriminator.eval()
    assert torch.equal(discriminator(images), discriminator(images))
    discriminator.train()
    assert not torch.equal(discriminator(images), discriminator(images))
    discriminator(images).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_published_init_scales_first_and_last_layers_by_a_tenth():
    discriminator = Discriminator()
    discriminator.reset_parameters(torch.Generator().manual_seed(0))
    coeff = {"Dconv1": 0.1, "Dconv2": 1.0, "Dconv3": 1.0, "Dconv4": 1.0, "Dconv5": 1.0,
             "Dfc6": 0.1, "Dfc7": 0.1}  # fmt: skip
    for name, c in coeff.items():
        layer = getattr(discriminator, name)
        fan_in = layer.weight[0].numel()
        expected = c * (2.0 / fan_in) ** 0.5
        # Dfc7 has only 512 weights: a 15% band is over 3 standard errors of the sample std.
        assert layer.weight.std().item() == pytest.approx(expected, rel=0.15), name
        assert layer.weight.mean().abs().item() < 0.2 * expected, name
        assert torch.count_nonzero(layer.bias) == 0, name


def test_published_init_starts_unsaturated_near_log_two():
    # Images in Caffe space (0-255 minus the mean): with gain 1 everywhere the logits
    # were about 1,000 times too large and the loss on fakes about 2e-7.
    torch.manual_seed(0)
    discriminator = Discriminator().eval()
    images = torch.rand(8, 3, 227, 227) * 255.0 - 117.0  # (B, 3, 227, 227)
    with torch.no_grad():
        logits = discriminator(images)  # (B, 2)
    loss_fake = torch.nn.functional.cross_entropy(logits, torch.ones(8, dtype=torch.long))
    assert loss_fake.item() == pytest.approx(0.693, abs=0.05)
