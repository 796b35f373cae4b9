"""Comparators: frozen feature networks for the feature loss and evaluation.

- :class:`CaffeNet`: ``bvlc_reference_caffenet`` up to pool5, exactly as Caffe
  computes it (ceil-mode pooling, grouped convolutions, LRN).
- :class:`AlexNet`: torchvision's AlexNet features, loaded from its state-dict
  file (no torchvision import), converting from Caffe space inside.
- :func:`random_caffenet`: the CaffeNet architecture with random weights, for
  offline runs; its ``weights_label`` says so everywhere it is reported.

All take (B, 3, H, W) Caffe-space input and return a dict of named feature maps.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from e2e_recon.data.images import caffe_to_rgb_tensor
from e2e_recon.errors import ConfigError, ModelFormatError
from e2e_recon.load_errors import describe_load_error

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


def caffe_max_pool2d(x: torch.Tensor, kernel: int, stride: int, pad: int = 0) -> torch.Tensor:
    """Max pooling with Caffe's output size: rounded up, last window inside the input.

    Caffe uses ``ceil((H + 2 pad - kernel) / stride) + 1`` outputs, dropping the
    last one when padding makes it start in the padding; windows that run past
    the border see only the real values. Implemented as -inf padding on the
    bottom/right followed by an ordinary (floor-mode) max pool.

    Parameters
    ----------
    x : Tensor, shape (B, C, H, W)

    Returns
    -------
    Tensor, shape (B, C, H_out, W_out)
    """
    sizes = []
    for size in x.shape[-2:]:
        out = math.ceil((size + 2 * pad - kernel) / stride) + 1
        if pad and (out - 1) * stride >= size + pad:
            out -= 1
        sizes.append(out)
    extra_h = (sizes[0] - 1) * stride + kernel - x.shape[-2] - pad
    extra_w = (sizes[1] - 1) * stride + kernel - x.shape[-1] - pad
    padded = F.pad(x, (pad, extra_w, pad, extra_h), value=-math.inf)
    return F.max_pool2d(padded, kernel, stride)


def _check_layers(requested: Iterable[str], available: tuple[str, ...], label: str) -> list[str]:
    requested = list(requested)
    unknown = [name for name in requested if name not in available]
    if unknown or not requested:
        raise ConfigError(
            f"comparator layers {unknown or requested}: not layers of {label}; "
            f"choose from {list(available)}."
        )
    return requested


def _freeze(module: nn.Module) -> None:
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)


class CaffeNet(nn.Module):
    """CaffeNet (``bvlc_reference_caffenet``) convolutional part, up to pool5.

    Parameters
    ----------
    weights_label : str
        Human-readable origin of the weights, shown in logs and reports.

    Notes
    -----
    Module names are the Caffe layer names (``conv1`` ... ``conv5``) so that
    Caffe blobs map one to one onto the state dict. The returned conv maps are
    after their ReLU, as Caffe's in-place ReLUs leave them.
    """

    layer_names: tuple[str, ...] = (
        "conv1", "pool1", "norm1", "conv2", "pool2", "norm2",
        "conv3", "conv4", "conv5", "pool5",
    )  # fmt: skip

    def __init__(self, weights_label: str = "CaffeNet, untrained") -> None:
        super().__init__()
        self.weights_label = weights_label
        self.conv1 = nn.Conv2d(3, 96, 11, stride=4)
        self.conv2 = nn.Conv2d(96, 256, 5, padding=2, groups=2)
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1, groups=2)
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1, groups=2)
        # Caffe's LRN alpha maps to torch's unchanged (both divide by local_size).
        self.lrn = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        _freeze(self)

    def train(self, mode: bool = True) -> CaffeNet:
        """Stay in eval mode: the comparator is frozen."""
        return super().train(False)

    def forward(
        self, x: torch.Tensor, layers: tuple[str, ...] = ("pool5",)
    ) -> dict[str, torch.Tensor]:
        """Feature maps of the requested layers.

        Parameters
        ----------
        x : Tensor, shape (B, 3, H, W), Caffe space (227 x 227 for pool5 of 6 x 6)
        layers : names from :attr:`layer_names`

        Returns
        -------
        dict name -> Tensor; pool5 is (B, 256, 6, 6) for 227 px input.
        """
        wanted = _check_layers(layers, self.layer_names, self.weights_label)
        deepest = max(self.layer_names.index(name) for name in wanted)
        steps: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
            "conv1": lambda h: F.relu(self.conv1(h)),  # (B, 96, 55, 55)
            "pool1": lambda h: caffe_max_pool2d(h, 3, 2),  # (B, 96, 27, 27)
            "norm1": self.lrn,
            "conv2": lambda h: F.relu(self.conv2(h)),  # (B, 256, 27, 27)
            "pool2": lambda h: caffe_max_pool2d(h, 3, 2),  # (B, 256, 13, 13)
            "norm2": self.lrn,
            "conv3": lambda h: F.relu(self.conv3(h)),  # (B, 384, 13, 13)
            "conv4": lambda h: F.relu(self.conv4(h)),  # (B, 384, 13, 13)
            "conv5": lambda h: F.relu(self.conv5(h)),  # (B, 256, 13, 13)
            "pool5": lambda h: caffe_max_pool2d(h, 3, 2),  # (B, 256, 6, 6)
        }
        out: dict[str, torch.Tensor] = {}
        h = x
        for name in self.layer_names[: deepest + 1]:
            h = steps[name](h)
            if name in wanted:
                out[name] = h
        return out


def random_caffenet(seed: int = 0) -> CaffeNet:
    """CaffeNet with RANDOM weights (He normal, zero bias), for offline runs only.

    Its ``weights_label`` states that the weights are random, so configs, logs
    and reports never present it as the trained network.
    """
    net = CaffeNet(weights_label=f"CaffeNet architecture, RANDOM weights (seed {seed})")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in (net.conv1, net.conv2, net.conv3, net.conv4, net.conv5):
            fan_in = conv.weight[0].numel()
            conv.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
            conv.bias.zero_()  # type: ignore[union-attr]
    return net


class AlexNet(nn.Module):
    """torchvision's AlexNet features (a different network from CaffeNet).

    Parameters
    ----------
    state_dict : mapping of torchvision ``alexnet`` parameter names to tensors
        (``features.0.weight`` ...); classifier entries are ignored.
    weights_label : str

    Notes
    -----
    The input is Caffe space; the wrapper converts it to RGB in [0, 1] and
    normalises with the ImageNet mean and standard deviation, as torchvision's
    weights expect.
    """

    layer_names: tuple[str, ...] = (
        "conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5",
    )  # fmt: skip
    #: torchvision module index of each convolution inside ``features``.
    _conv_index: ClassVar[dict[str, int]] = {
        "conv1": 0,
        "conv2": 3,
        "conv3": 6,
        "conv4": 8,
        "conv5": 10,
    }

    def __init__(
        self, state_dict: dict[str, torch.Tensor], weights_label: str = "AlexNet (torchvision)"
    ) -> None:
        super().__init__()
        self.weights_label = weights_label
        self.features = nn.ModuleDict(
            {
                "0": nn.Conv2d(3, 64, 11, stride=4, padding=2),
                "3": nn.Conv2d(64, 192, 5, padding=2),
                "6": nn.Conv2d(192, 384, 3, padding=1),
                "8": nn.Conv2d(384, 256, 3, padding=1),
                "10": nn.Conv2d(256, 256, 3, padding=1),
            }
        )
        features = {k: v for k, v in state_dict.items() if k.startswith("features.")}
        self._load(features)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN_RGB).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD_RGB).view(1, 3, 1, 1))
        _freeze(self)

    def _load(self, features: dict[str, torch.Tensor]) -> None:
        own = self.state_dict()
        missing = sorted(set(own) - set(features))
        if missing:
            raise ModelFormatError(
                f"{self.weights_label}: missing {missing}; expected a torchvision "
                "AlexNet state dict (alexnet-owt-*.pth)."
            )
        for key, tensor in features.items():
            if key in own and tuple(tensor.shape) != tuple(own[key].shape):
                raise ModelFormatError(
                    f"{self.weights_label}: '{key}' has shape {tuple(tensor.shape)}, "
                    f"expected {tuple(own[key].shape)} (torchvision AlexNet)."
                )
        self.load_state_dict({k: features[k] for k in own}, strict=True)

    def train(self, mode: bool = True) -> AlexNet:
        """Stay in eval mode: the comparator is frozen."""
        return super().train(False)

    def forward(
        self, x: torch.Tensor, layers: tuple[str, ...] = ("pool5",)
    ) -> dict[str, torch.Tensor]:
        """Feature maps of the requested layers (convs after ReLU).

        Parameters
        ----------
        x : Tensor, shape (B, 3, H, W), Caffe space

        Returns
        -------
        dict name -> Tensor; pool5 is (B, 256, 6, 6) for 224-227 px input.
        """
        wanted = _check_layers(layers, self.layer_names, self.weights_label)
        deepest = max(self.layer_names.index(name) for name in wanted)
        mean, std = self.get_buffer("mean"), self.get_buffer("std")
        h = (caffe_to_rgb_tensor(x) / 255.0 - mean) / std  # (B, 3, H, W) RGB, normalised
        out: dict[str, torch.Tensor] = {}
        for name in self.layer_names[: deepest + 1]:
            if name.startswith("conv"):
                h = F.relu(self.features[str(self._conv_index[name])](h))
            else:
                h = F.max_pool2d(h, 3, 2)
            if name in wanted:
                out[name] = h
        return out


def load_alexnet(path: str | os.PathLike[str]) -> AlexNet:
    """AlexNet comparator from a torchvision state-dict file (``alexnet-owt-*.pth``).

    Raises
    ------
    ModelFormatError
        If the file cannot be read or is not an AlexNet state dict.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise ModelFormatError(
            f"{path}: cannot read a torchvision AlexNet state dict ({describe_load_error(err)}). "
            "Expected the file alexnet-owt-7be5be79.pth from download.pytorch.org."
        ) from err
    if not isinstance(state, dict):
        raise ModelFormatError(f"{path}: not a state dict (found {type(state).__name__}).")
    return AlexNet(state, weights_label=f"AlexNet (torchvision), weights {path.name}")
