"""The generator: configurable sizes, published layout, initialisation, frozen biases."""

from __future__ import annotations

import math

import pytest
import torch

from e2e_recon.errors import ConfigError
from e2e_recon.nets.generator import Generator, center_crop, generator_layer_specs


def test_published_layer_table():
    specs = generator_layer_specs()  # 4096 wide, 256 px, base 256
    table = [(s.name, s.out_channels, s.kernel, s.stride, s.pad) for s in specs]
    assert table == [
        ("defc7", 4096, 1, 1, 0), ("defc6", 4096, 1, 1, 0), ("defc5", 4096, 1, 1, 0),
        ("deconv5", 256, 4, 2, 1), ("conv5_1", 512, 3, 1, 1),
        ("deconv4", 256, 4, 2, 1), ("conv4_1", 256, 3, 1, 1),
        ("deconv3", 128, 4, 2, 1), ("conv3_1", 128, 3, 1, 1),
        ("deconv2", 64, 4, 2, 1), ("deconv1", 32, 4, 2, 1), ("deconv0", 3, 4, 2, 1),
    ]  # fmt: skip


@pytest.mark.parametrize(("size", "n_up"), [(8, 1), (32, 3), (64, 4), (128, 5)])
def test_output_size_sets_the_number_of_upsampling_stages(size, n_up):
    generator = Generator(n_voxels=10, fc_width=32, output_size_px=size, base_channels=8)
    assert sum(spec.kind == "up" for spec in generator.specs) == n_up
    assert generator.specs[-1].name == "deconv0"
    with torch.no_grad():
        assert generator(torch.randn(2, 10)).shape == (2, 3, size, size)


def test_parameter_names_are_caffe_layer_names():
    generator = Generator(n_voxels=5, fc_width=16, output_size_px=64, base_channels=4)
    names = [key.rsplit(".", 1)[0] for key in generator.state_dict()][::2]
    assert names == [
        "defc7",
        "defc6",
        "defc5",
        "deconv3",
        "conv3_1",
        "deconv2",
        "deconv1",
        "deconv0",
    ]
    assert generator.defc7.weight.shape == (16, 5)  # Caffe (out, in)
    assert generator.deconv3.weight.shape == (1, 2, 4, 4)  # Caffe (in, out, kh, kw): 16/16 -> 2


@pytest.mark.parametrize(
    "kwargs", [{"output_size_px": 100}, {"output_size_px": 4}, {"fc_width": 40}, {"n_voxels": 0}]
)
def test_impossible_sizes_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        Generator(**{"n_voxels": 10, "fc_width": 32, "base_channels": 8} | kwargs)


def test_transposed_conv_biases_are_zero_and_frozen():
    generator = Generator(n_voxels=6, fc_width=32, output_size_px=32, base_channels=8)
    for spec in generator.specs:
        bias = getattr(generator, spec.name).bias
        assert torch.count_nonzero(bias) == 0
        assert bias.requires_grad == (spec.kind == "fc")
    generator(torch.randn(3, 6)).square().mean().backward()
    assert generator.deconv0.bias.grad is None
    assert generator.deconv0.weight.grad is not None and generator.defc7.bias.grad is not None


def test_loading_copies_frozen_biases():
    source = Generator(n_voxels=6, fc_width=32, output_size_px=16, base_channels=8)
    with torch.no_grad():
        source.deconv0.bias.fill_(0.5)
    target = Generator(**source.arch_kwargs())
    target.load_state_dict(source.state_dict())
    assert torch.all(target.deconv0.bias == 0.5) and not target.deconv0.bias.requires_grad


def test_he_normal_init_uses_the_fork_gains():
    generator = Generator(n_voxels=64, fc_width=256, output_size_px=256, base_channels=256)
    torch.manual_seed(0)
    generator.reset_parameters()
    # Caffe MSRA: std = msra_coeff * sqrt(2 / (count / shape[0])).
    for name, coeff, fan in [
        ("defc6", 1.0, 256),
        ("deconv5", 1.8, 256 * 16),
        ("conv5_1", 0.9, 512 * 9),
    ]:
        weight = getattr(generator, name).weight
        assert weight[0].numel() == fan
        assert weight.std().item() == pytest.approx(coeff * math.sqrt(2 / fan), rel=0.03)


def test_init_is_reproducible_with_a_generator():
    a = Generator(n_voxels=4, fc_width=16, output_size_px=8, base_channels=4)
    b = Generator(**a.arch_kwargs())
    a.reset_parameters(torch.Generator().manual_seed(3))
    b.reset_parameters(torch.Generator().manual_seed(3))
    for (key, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), key


def test_center_crop_offset_14_for_256_to_227():
    images = torch.arange(256.0).view(1, 1, 1, 256).expand(2, 3, 256, 256)
    crop = center_crop(images, 227)
    assert crop.shape == (2, 3, 227, 227)
    assert crop[0, 0, 0, 0].item() == 14 and crop[0, 0, 0, -1].item() == 240
    with pytest.raises(ConfigError):
        center_crop(images, 300)
