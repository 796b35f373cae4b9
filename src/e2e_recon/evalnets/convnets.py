"""AlexNet, VGG19 and ResNet-50 with torchvision's module names.

Each class builds the same module tree as ``torchvision.models.alexnet``,
``vgg19`` and ``resnet50`` (read from pytorch/vision, ``torchvision/models/``),
so the official state dicts load strictly and a feature is named as torchvision
names it (``features.4``, ``classifier.2``, ``avgpool``). ReLUs are not in
place: a feature read at a convolution must not be overwritten by the ReLU that
follows it.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

#: VGG19 ("configuration E"): output channels of each convolution, "M" for max pooling.
VGG19_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)  # fmt: skip


class AlexNet(nn.Module):
    """torchvision's AlexNet ("one weird trick" variant, ``alexnet-owt-7be5be79.pth``).

    ``forward`` takes (B, 3, H, W) ImageNet-normalised RGB and returns (B, 1000) logits.
    Layers in the lab's naming (after their ReLU): conv1 ``features.1``, conv2
    ``features.4``, conv3 ``features.7``, conv4 ``features.9``, conv5 ``features.11``,
    fc6 ``classifier.2``, fc7 ``classifier.5``, fc8 ``classifier.6``.
    """

    #: The lab's layer names -> module names of this network.
    LAYERS: ClassVar[dict[str, str]] = {
        "conv1": "features.1",
        "conv2": "features.4",
        "conv3": "features.7",
        "conv4": "features.9",
        "conv5": "features.11",
        "fc6": "classifier.2",
        "fc7": "classifier.5",
        "fc8": "classifier.6",
    }

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.avgpool(self.features(x))  # (B, 256, 6, 6)
        return self.classifier(h.flatten(1))  # (B, num_classes)


class VGG19(nn.Module):
    """torchvision's VGG19 without batch norm (``vgg19-dcbb9e9d.pth``).

    ``forward`` takes (B, 3, H, W) ImageNet-normalised RGB and returns (B, 1000)
    logits. :attr:`LAYERS` maps the usual names (``conv1_1`` ... ``conv5_4``,
    ``fc6``-``fc8``, after their ReLU except fc8) to module names.
    """

    LAYERS: ClassVar[dict[str, str]] = {}  # filled below from VGG19_CONFIG

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in VGG19_CONFIG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(item, int)
                layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU()]
                channels = item
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.avgpool(self.features(x))  # (B, 512, 7, 7)
        return self.classifier(h.flatten(1))  # (B, num_classes)


def _vgg_layer_names() -> dict[str, str]:
    """conv<block>_<n> -> ``features.<index of its ReLU>``, then fc6-fc8."""
    names: dict[str, str] = {}
    index, block, conv = 0, 1, 0
    for item in VGG19_CONFIG:
        if item == "M":
            index, block, conv = index + 1, block + 1, 0
        else:
            conv += 1
            names[f"conv{block}_{conv}"] = f"features.{index + 1}"
            index += 2
    names.update({"fc6": "classifier.1", "fc7": "classifier.4", "fc8": "classifier.6"})
    return names


VGG19.LAYERS = _vgg_layer_names()


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: the stride sits on the 3x3 convolution, as in torchvision."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return self.relu(h + identity)


class ResNet50(nn.Module):
    """torchvision's ResNet-50 (v1.5).

    Parameters
    ----------
    num_classes : int or None
        Size of ``fc``; ``None`` builds the network without it, as the SwAV
        checkpoint (a self-supervised backbone) has no classifier.

    ``forward`` takes (B, 3, H, W) ImageNet-normalised RGB; the pooled features
    are the output of ``avgpool``, (B, 2048, 1, 1).
    """

    def __init__(self, num_classes: int | None = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = 64
        for index, (blocks, width, stride) in enumerate(
            ((3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2)), start=1
        ):
            stage = []
            for block in range(blocks):
                stage.append(Bottleneck(channels, width, stride if block == 0 else 1))
                channels = width * Bottleneck.expansion
            self.add_module(f"layer{index}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2048, num_classes) if num_classes else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4)
        for index in range(1, 5):
            h = self.get_submodule(f"layer{index}")(h)  # (B, 2048, H/32, W/32) at the end
        h = self.avgpool(h).flatten(1)  # (B, 2048)
        return h if self.fc is None else self.fc(h)
