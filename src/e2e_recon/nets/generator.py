"""The generator: fMRI pattern -> image in Caffe space (Shen et al. 2019).

Three fully connected layers (``defc7``, ``defc6``, ``defc5``), a reshape to
(fc_width / 16) x 4 x 4, then transposed convolutions that double the size
(``deconvN``, k4 s2 p1), some followed by a size-keeping one (``convN_1``,
k3 s1 p1), all with LeakyReLU(0.3) except the last. The published network has
six doubling stages (4 -> 256 px); fewer or more follow from ``output_size_px``.

Module names are the Caffe layer names, so a released ``.caffemodel`` maps one to
one onto :meth:`~torch.nn.Module.state_dict` keys (``deconv5.weight`` ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from e2e_recon.data.images import grey_caffe_tensor
from e2e_recon.errors import ConfigError

#: Spatial size of the reshaped fully connected output.
SEED_SIZE_PX = 4
#: He-normal gains of the Caffe fork (``msra_coeff``), per layer kind.
MSRA_COEFF = {"fc": 1.0, "up": 1.8, "same": 0.9}


@dataclass(frozen=True)
class LayerSpec:
    """One parametrised generator layer, as in the prototxt."""

    name: str
    kind: str  # "fc", "up" (k4 s2 p1 transposed conv) or "same" (k3 s1 p1)
    out_channels: int
    kernel: int = 1
    stride: int = 1
    pad: int = 0

    @property
    def msra_coeff(self) -> float:
        return MSRA_COEFF[self.kind]


def _stage_channels(stage: int, base: int) -> tuple[int, int | None]:
    """Channels of ``deconv{stage}`` and of its ``conv{stage}_1`` (None if absent).

    The published widths (base 256): deconv5 256 + conv5_1 512, deconv4 256 +
    conv4_1 256, deconv3 128 + conv3_1 128, deconv2 64, deconv1 32, deconv0 3.
    Stages above 5 (outputs over 256 px) repeat stage 5.
    """
    if stage == 0:
        return 3, None
    if stage >= 5:
        return base, 2 * base
    if stage == 4:
        return base, base
    width = max(1, base // 2 ** (4 - stage))  # base/2, base/4, base/8 for stages 3, 2, 1
    return width, (width if stage == 3 else None)


def generator_layer_specs(
    fc_width: int = 4096, output_size_px: int = 256, base_channels: int = 256
) -> list[LayerSpec]:
    """The generator's parametrised layers in forward order.

    Parameters
    ----------
    fc_width : width of the three fully connected layers (divisible by 16).
    output_size_px : output side, 4 x 2**k with k >= 1 (256 for the paper).
    base_channels : width of the deepest transposed convolutions (256 published).

    Returns
    -------
    list of LayerSpec

    Raises
    ------
    ConfigError
        If the sizes cannot form this architecture.
    """
    n_stages = round(math.log2(max(output_size_px, 1) / SEED_SIZE_PX))
    if n_stages < 1 or SEED_SIZE_PX * 2**n_stages != output_size_px:
        raise ConfigError(
            f"generator output_size_px={output_size_px}: must be 4 x a power of two "
            "(8, 16, 32, 64, 128, 256, 512); 256 is the published size."
        )
    area = SEED_SIZE_PX * SEED_SIZE_PX
    if fc_width < area or fc_width % area or base_channels < 1:
        raise ConfigError(
            f"generator fc_width={fc_width}, base_channels={base_channels}: fc_width must "
            f"be a positive multiple of {area} (4096 published) and base_channels >= 1."
        )
    specs = [LayerSpec(name, "fc", fc_width) for name in ("defc7", "defc6", "defc5")]
    for stage in range(n_stages - 1, -1, -1):
        up, same = _stage_channels(stage, base_channels)
        specs.append(LayerSpec(f"deconv{stage}", "up", up, kernel=4, stride=2, pad=1))
        if same is not None:
            specs.append(LayerSpec(f"conv{stage}_1", "same", same, kernel=3, stride=1, pad=1))
    return specs


class Generator(nn.Module):
    """fMRI pattern -> image generator (published architecture, configurable size).

    Parameters
    ----------
    n_voxels : int
        Length of the input pattern.
    fc_width : int
        Width of ``defc7``/``defc6``/``defc5`` (4096 published).
    output_size_px : int
        Side of the uncropped output (256 published); sets the number of stages.
    base_channels : int
        Width of the deepest transposed convolutions (256 published).
    leaky_slope : float
        Negative slope of the LeakyReLUs (0.3 published).
    colour : {"rgb", "grey"}
        ``"grey"`` makes every output pixel exactly grey (its three 0-255 values
        replaced by their mean) for greyscale data; ``"rgb"`` (published) leaves it.
        A fixed projection after the last layer: the weights are the same either way.

    Notes
    -----
    The transposed-convolution biases exist (so released weights load) but are
    frozen (``requires_grad=False``, learning-rate multiplier 0 in Caffe); they
    start at zero and keep whatever value is loaded.
    """

    def __init__(
        self,
        n_voxels: int,
        fc_width: int = 4096,
        output_size_px: int = 256,
        base_channels: int = 256,
        leaky_slope: float = 0.3,
        colour: str = "rgb",
    ) -> None:
        super().__init__()
        if n_voxels < 1:
            raise ConfigError(f"generator n_voxels={n_voxels}: must be at least 1.")
        if colour not in ("rgb", "grey"):
            raise ConfigError(f"generator colour={colour!r}: must be 'rgb' or 'grey'.")
        self.colour = colour
        self.n_voxels = int(n_voxels)
        self.fc_width = int(fc_width)
        self.output_size_px = int(output_size_px)
        self.base_channels = int(base_channels)
        self.leaky_slope = float(leaky_slope)
        self.specs = generator_layer_specs(fc_width, output_size_px, base_channels)
        in_features = self.n_voxels
        in_channels = fc_width // (SEED_SIZE_PX * SEED_SIZE_PX)
        for spec in self.specs:
            if spec.kind == "fc":
                self.add_module(spec.name, nn.Linear(in_features, spec.out_channels))
                in_features = spec.out_channels
                continue
            layer = nn.ConvTranspose2d(
                in_channels, spec.out_channels, spec.kernel, spec.stride, spec.pad
            )
            layer.bias.requires_grad_(False)  # type: ignore[union-attr]
            self.add_module(spec.name, layer)
            in_channels = spec.out_channels
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """He-normal weights with the fork's gains, zero biases (as the prototxt).

        Caffe's MSRA filler draws N(0, (msra_coeff * sqrt(2 / n))**2) with
        n = count / shape[0] of the Caffe blob: the input width for a fully
        connected layer, out_channels * k * k for a transposed convolution
        (whose blob is (in, out, k, k), like ``ConvTranspose2d.weight``).
        """
        with torch.no_grad():
            for spec in self.specs:
                layer = getattr(self, spec.name)
                weight = layer.weight
                fan = weight[0].numel()
                std = spec.msra_coeff * math.sqrt(2.0 / fan)
                weight.normal_(0.0, std, generator=generator)
                layer.bias.zero_()

    def arch_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this architecture."""
        return {
            "n_voxels": self.n_voxels,
            "fc_width": self.fc_width,
            "output_size_px": self.output_size_px,
            "base_channels": self.base_channels,
            "leaky_slope": self.leaky_slope,
            "colour": self.colour,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Generate images.

        Parameters
        ----------
        x : Tensor, shape (B, n_voxels)

        Returns
        -------
        Tensor, shape (B, 3, S, S), Caffe space, uncropped (S = output_size_px);
        B = G = R (after adding the channel means) when ``colour`` is ``"grey"``
        """
        last = len(self.specs) - 1
        h = x
        for index, spec in enumerate(self.specs):
            if spec.kind != "fc" and self.specs[index - 1].kind == "fc":
                h = h.reshape(h.shape[0], -1, SEED_SIZE_PX, SEED_SIZE_PX)  # (B, fc_width/16, 4, 4)
            h = getattr(self, spec.name)(h)
            if index != last:
                h = F.leaky_relu(h, self.leaky_slope)
        if self.colour == "grey":
            h = grey_caffe_tensor(h)  # (B, 3, S, S), equal channels in 0-255 terms
        return h  # (B, 3, S, S)


def center_crop(images: torch.Tensor, crop_px: int) -> torch.Tensor:
    """Centre crop at offset (S - crop) // 2, as the network's CropSimple layer.

    Parameters
    ----------
    images : Tensor, shape (B, 3, S, S)
    crop_px : int, at most S

    Returns
    -------
    Tensor, shape (B, 3, crop_px, crop_px); 256 -> 227 uses offset 14.
    """
    height, width = images.shape[-2:]
    if not 0 < crop_px <= min(height, width):
        raise ConfigError(f"crop_px={crop_px}: must be between 1 and the image side {height}.")
    top, left = (height - crop_px) // 2, (width - crop_px) // 2
    return images[..., top : top + crop_px, left : left + crop_px]
