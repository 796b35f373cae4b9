"""EfficientNet-B1 with torchvision's module names (``efficientnet_b1-c27df63c.pth``).

Follows ``torchvision/models/efficientnet.py`` and ``torchvision/ops/misc.py``
(pytorch/vision): the B0 stage table with depth multiplier 1.1 (stage lengths
rounded up: 2, 3, 3, 4, 4, 5, 2), width multiplier 1.0, batch norm with torch's
default eps, SiLU, squeeze-excitation to a quarter of the block's input width.
A convolution-norm-activation unit is an ``nn.Sequential`` (conv ``.0``, norm
``.1``), as torchvision's ``Conv2dNormActivation`` is, so the keys match
(``features.1.0.block.0.0.weight``). Stochastic depth is the identity at
evaluation and has no parameters, so it is left out.

The weights are torchvision's ``IMAGENET1K_V2``, the ``DEFAULT`` that the NSD
benchmark code asks for (``EfficientNet_B1_Weights.DEFAULT``).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

#: B0 stages: (expand ratio, kernel, stride, input channels, output channels, blocks).
B0_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
B1_DEPTH_MULT = 1.1


def conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel: int,
    stride: int = 1,
    groups: int = 1,
    activation: bool = True,
) -> nn.Sequential:
    """Conv (no bias, 'same' padding for odd kernels), batch norm, optional SiLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels, out_channels, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False
        ),
        nn.BatchNorm2d(out_channels),
    ]
    if activation:
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Channel gates from the pooled map: 1x1 conv, SiLU, 1x1 conv, sigmoid."""

    def __init__(self, channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = nn.SiLU()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))  # (B, C, 1, 1)
        return x * self.scale_activation(scale)


class MBConv(nn.Module):
    """Inverted residual block: expand (if the ratio is not 1), depthwise, SE, project."""

    def __init__(
        self, expand_ratio: int, kernel: int, stride: int, in_channels: int, out_channels: int
    ) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and in_channels == out_channels
        expanded = in_channels * expand_ratio
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(conv_bn_act(in_channels, expanded, 1))
        layers.append(conv_bn_act(expanded, expanded, kernel, stride, groups=expanded))
        layers.append(SqueezeExcitation(expanded, max(1, in_channels // 4)))
        layers.append(conv_bn_act(expanded, out_channels, 1, activation=False))
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return out + x if self.use_res_connect else out


class EfficientNetB1(nn.Module):
    """EfficientNet-B1: ``features`` (stem, 7 stages, head), ``avgpool``, ``classifier``.

    ``forward`` takes (B, 3, H, W) ImageNet-normalised RGB and returns (B, 1000)
    logits; the NSD benchmark's feature is the output of ``avgpool``, (B, 1280, 1, 1).
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_act(3, B0_STAGES[0][3], 3, stride=2)]
        for expand, kernel, stride, in_channels, out_channels, blocks in B0_STAGES:
            stage = []
            for index in range(math.ceil(blocks * B1_DEPTH_MULT)):
                first = index == 0
                stage.append(
                    MBConv(
                        expand,
                        kernel,
                        stride if first else 1,
                        in_channels if first else out_channels,
                        out_channels,
                    )
                )
            layers.append(nn.Sequential(*stage))
        last = B0_STAGES[-1][4]
        layers.append(conv_bn_act(last, 4 * last, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(4 * last, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        h = self.avgpool(self.features(x))  # (B, 1280, 1, 1)
        return self.classifier(h.flatten(1))  # (B, num_classes)
