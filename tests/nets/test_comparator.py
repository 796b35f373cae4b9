"""Comparators: Caffe ceil-mode pooling, layer selection, freezing, AlexNet, random CaffeNet."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from e2e_recon.data.images import caffe_to_rgb_tensor
from e2e_recon.errors import ConfigError, ModelFormatError
from e2e_recon.nets.comparator import (
    IMAGENET_MEAN_RGB,
    IMAGENET_STD_RGB,
    AlexNet,
    caffe_max_pool2d,
    load_alexnet,
    random_caffenet,
)


def direct_caffe_max_pool(x: np.ndarray, kernel: int, stride: int, pad: int) -> np.ndarray:
    """Caffe's PoolingLayer (MAX) written out loop by loop."""
    height, width = x.shape[-2:]
    out_h = math.ceil((height + 2 * pad - kernel) / stride) + 1
    out_w = math.ceil((width + 2 * pad - kernel) / stride) + 1
    if pad and (out_h - 1) * stride >= height + pad:
        out_h -= 1
    if pad and (out_w - 1) * stride >= width + pad:
        out_w -= 1
    out = np.empty((*x.shape[:-2], out_h, out_w), dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            top, left = i * stride - pad, j * stride - pad
            rows = slice(max(top, 0), min(top + kernel, height))
            cols = slice(max(left, 0), min(left + kernel, width))
            out[..., i, j] = x[..., rows, cols].max(axis=(-2, -1))
    return out


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pad"), [(14, 3, 2, 0), (8, 3, 2, 1), (13, 3, 2, 0), (10, 2, 3, 0)]
)
def test_ceil_mode_pooling_matches_direct_computation(size, kernel, stride, pad):
    floor_size = (size + 2 * pad - kernel) // stride + 1
    x = torch.randn(2, 3, size, size + 1)
    ours = caffe_max_pool2d(x, kernel, stride, pad).numpy()
    expected = direct_caffe_max_pool(x.numpy(), kernel, stride, pad)
    np.testing.assert_array_equal(ours, expected)
    if size == 14:  # the edge case: ceil and floor differ
        assert ours.shape[-2] == floor_size + 1 == 7


def test_random_caffenet_is_labelled_frozen_and_differentiable():
    net = random_caffenet(seed=0)
    assert "RANDOM" in net.weights_label and "seed 0" in net.weights_label
    assert not any(p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training
    x = torch.randn(1, 3, 227, 227, requires_grad=True)
    features = net(x, layers=("conv1", "norm2", "pool5"))
    assert list(features) == ["conv1", "norm2", "pool5"]
    assert features["conv1"].shape == (1, 96, 55, 55)
    assert features["pool5"].shape == (1, 256, 6, 6)
    features["pool5"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    again = random_caffenet(seed=0)
    assert torch.equal(again.conv3.weight, net.conv3.weight)


def test_unknown_layer_is_a_config_error():
    with pytest.raises(ConfigError, match="fc7"):
        random_caffenet()(torch.zeros(1, 3, 227, 227), layers=("fc7",))


def torchvision_like_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors named like torchvision's alexnet state dict (classifier kept tiny:
    the comparator ignores it)."""
    shapes = {
        "features.0": (64, 3, 11, 11), "features.3": (192, 64, 5, 5),
        "features.6": (384, 192, 3, 3), "features.8": (256, 384, 3, 3),
        "features.10": (256, 256, 3, 3), "classifier.1": (8, 16),
        "classifier.4": (8, 8), "classifier.6": (10, 8),
    }  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        state[f"{name}.weight"] = torch.randn(shape, generator=generator) * 0.01
        state[f"{name}.bias"] = torch.randn(shape[0], generator=generator) * 0.01
    return state


def test_alexnet_from_state_dict_file_converts_caffe_space(tmp_path):
    state = torchvision_like_state()
    path = tmp_path / "alexnet-owt-test.pth"
    torch.save(state, path)
    net = load_alexnet(path)
    assert "AlexNet" in net.weights_label and not net.training
    caffe = torch.randn(2, 3, 227, 227) * 50
    features = net(caffe, layers=("conv1", "pool5"))
    assert features["pool5"].shape == (2, 256, 6, 6)
    # Direct computation: RGB in [0, 1], ImageNet normalisation, then conv1 + ReLU.
    rgb = caffe_to_rgb_tensor(caffe) / 255.0
    mean = torch.tensor(IMAGENET_MEAN_RGB).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD_RGB).view(1, 3, 1, 1)
    expected = torch.nn.functional.conv2d(
        (rgb - mean) / std,
        state["features.0.weight"],
        state["features.0.bias"],
        stride=4,
        padding=2,
    ).relu()
    torch.testing.assert_close(features["conv1"], expected)


def test_alexnet_rejects_other_state_dicts(tmp_path):
    state = torchvision_like_state()
    state["features.3.weight"] = state["features.3.weight"][:, :10]
    with pytest.raises(ModelFormatError, match=r"features\.3\.weight"):
        AlexNet(state)
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ModelFormatError, match=r"junk\.pth"):
        load_alexnet(path)
