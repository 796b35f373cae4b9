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
