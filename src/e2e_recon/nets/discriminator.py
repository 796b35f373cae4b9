"""The discriminator: image -> logits (real = class 0, generated = class 1).

As published (DeePSiM), it sees the image only, never the fMRI pattern:
Dconv1 32 k7 s4, Dconv2 64 k5, Dconv3 128 k3 s2, Dconv4 256 k3, Dconv5 256 k3 s2
(ReLU after each), average pooling over the whole map (Caffe: 11 x 11 for a
227 px input), dropout 0.5, Dfc6 256 + ReLU, dropout 0.5, Dfc7 2.
Module names are the Caffe layer names.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from e2e_recon.errors import ConfigError

#: (name, out_channels, kernel, stride) of the convolutions.
CONV_LAYERS: tuple[tuple[str, int, int, int], ...] = (
    ("Dconv1", 32, 7, 4),
    ("Dconv2", 64, 5, 1),
    ("Dconv3", 128, 3, 2),
    ("Dconv4", 256, 3, 1),
    ("Dconv5", 256, 3, 2),
)

#: The fork's ``msra_coeff`` per layer (REFERENCE.md, "Networks"): weights are drawn with
#: std = coeff x sqrt(2 / fan_in). The small first and last layers keep the initial logits
#: near zero, so D starts at a loss of about log 2 instead of saturated; the rest use 1.
MSRA_COEFF: dict[str, float] = {"Dconv1": 0.1, "Dfc6": 0.1, "Dfc7": 0.1}

#: The smallest square input the five convolutions accept (a 1 x 1 Dconv5 map).
MIN_INPUT_PX = 63


def conv_output_size(input_size_px: int) -> int:
    """Side of the Dconv5 map for a square input (11 for 227 px)."""
    size = input_size_px
    for _, _, kernel, stride in CONV_LAYERS:
        size = (size - kernel) // stride + 1
    return size


class Discriminator(nn.Module):
    """Image discriminator of the published model.

    Parameters
    ----------
    input_size_px : int
        Side of the square input (227 published; at least :data:`MIN_INPUT_PX`, 63).
    """

    def __init__(self, input_size_px: int = 227) -> None:
        super().__init__()
        if conv_output_size(input_size_px) < 1:
            raise ConfigError(
                f"discriminator input_size_px={input_size_px}: too small for its "
                f"five convolutions; use at least {MIN_INPUT_PX} (227 published), or train "
                "without the adversarial term (loss.adversarial_weight=0)"
            )
        self.input_size_px = int(input_size_px)
        in_channels = 3
        for name, out_channels, kernel, stride in CONV_LAYERS:
            self.add_module(name, nn.Conv2d(in_channels, out_channels, kernel, stride))
            in_channels = out_channels
        # Caffe's Dpool5 (AVE, kernel = stride = 11 at 227 px) covers the whole map.
        self.Dpool5 = nn.AdaptiveAvgPool2d(1)
        self.drop5 = nn.Dropout(0.5)
        self.Dfc6 = nn.Linear(in_channels, 256)
        self.drop6 = nn.Dropout(0.5)
        self.Dfc7 = nn.Linear(256, 2)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """He-normal weights (Caffe "msra", fan-in) scaled by :data:`MSRA_COEFF`; zero biases.

        As the published prototxt: std = coeff x sqrt(2 / fan_in) with coeff 0.1 for
        Dconv1, Dfc6 and Dfc7 and 1 for Dconv2-5. Layers are drawn in network order.
        """
        with torch.no_grad():
            for name, module in self.named_children():
                if isinstance(module, nn.Conv2d | nn.Linear):
                    fan_in = module.weight[0].numel()
                    std = MSRA_COEFF.get(name, 1.0) * math.sqrt(2.0 / fan_in)
                    module.weight.normal_(0.0, std, generator=generator)
                    module.bias.zero_()  # type: ignore[union-attr]

    def arch_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this architecture."""
        return {"input_size_px": self.input_size_px}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify images.

        Parameters
        ----------
        x : Tensor, shape (B, 3, H, W), Caffe space

        Returns
        -------
        Tensor, shape (B, 2): logits; class 0 = real, 1 = generated.
        """
        h = x
        for name, *_ in CONV_LAYERS:
            h = F.relu(getattr(self, name)(h))  # Dconv5: (B, 256, 11, 11) at 227 px
        h = self.Dpool5(h).flatten(1)  # (B, 256)
        h = F.relu(self.Dfc6(self.drop5(h)))  # (B, 256)
        return self.Dfc7(self.drop6(h))  # (B, 2)
