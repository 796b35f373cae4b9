"""Features of images at named modules of a network, with the benchmarks' preprocessing.

A feature is the output of a module, named as ``named_modules`` names it
(``features.4``, ``avgpool``), which is also the node name torchvision's
``create_feature_extractor`` gives a module's output; ``""`` is the network's
own output. Forward hooks collect them in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from e2e_recon.errors import ConfigError


@dataclass(frozen=True)
class Preprocess:
    """How images become network input: resize, then normalise.

    Attributes
    ----------
    size_px : int
        Square size after a bilinear resize.
    mean, std : tuple of float
        Per-channel normalisation of RGB in 0-1.
    antialias : bool
        Antialias when shrinking, as torchvision's ``Resize`` does on tensors since
        0.17 (True), or not, as torchvision up to 0.16 did by default (False).
    """

    size_px: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    antialias: bool = True

    def __call__(self, images: np.ndarray, device: torch.device) -> torch.Tensor:
        """(B, S, S, 3) RGB 0-255 -> (B, 3, size, size) normalised float32 tensor."""
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(device)
        x = _resize(x.permute(0, 3, 1, 2) / 255.0, self.size_px, self.antialias)  # 0-1
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)
        return (x - mean) / std


def module_features(
    net: nn.Module,
    images: np.ndarray,
    nodes: Sequence[str],
    preprocess: Preprocess,
    device: torch.device,
    batch_size: int = 16,
) -> dict[str, np.ndarray]:
    """Flattened features of ``images`` at ``nodes``.

    Parameters
    ----------
    net : nn.Module
        In eval mode, on ``device``.
    images : ndarray, shape (N, S, S, 3)
        RGB, 0-255.
    nodes : sequence of str
        Module names (``""`` for the output).
    preprocess : Preprocess
    device : torch.device
    batch_size : int

    Returns
    -------
    dict
        node -> (N, D) float32 array.
    """
    modules = dict(net.named_modules())
    unknown = [n for n in nodes if n and n not in modules]
    if unknown:
        raise ConfigError(f"{type(net).__name__} has no module(s) {unknown}")
    captured: dict[str, torch.Tensor] = {}
    hooks = [modules[name].register_forward_hook(_saver(captured, name)) for name in nodes if name]
    out: dict[str, list[np.ndarray]] = {name: [] for name in nodes}
    try:
        for start in range(0, len(images), batch_size):
            x = preprocess(images[start : start + batch_size], device)  # (B, 3, size, size)
            with torch.inference_mode():
                captured[""] = net(x)
            for name in nodes:
                out[name].append(captured[name].float().reshape(len(x), -1).cpu().numpy())
            captured.clear()
    finally:
        for hook in hooks:
            hook.remove()
    return {name: np.concatenate(chunks) for name, chunks in out.items()}


def _saver(store: dict[str, torch.Tensor], name: str):
    def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        store[name] = output

    return hook


def resize_bilinear(images: np.ndarray, size_px: int, antialias: bool = True) -> np.ndarray:
    """(N, H, W, C) -> (N, size, size, C) float64, bilinear as :class:`Preprocess` resizes.

    Upsampling (and bilinear interpolation generally) keeps values inside the
    range of the input, so images in 0-255 stay there. ``antialias``: as for
    :class:`Preprocess`.
    """
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2)
    return _resize(x, size_px, antialias).permute(0, 2, 3, 1).numpy().astype(np.float64)


def _resize(x: torch.Tensor, size_px: int, antialias: bool = True) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, size, size), bilinear (torchvision's ``Resize`` on tensors),
    antialiased when shrinking if ``antialias``; unchanged when already that size."""
    if x.shape[-1] == size_px and x.shape[-2] == size_px:
        return x
    return F.interpolate(
        x,
        size=(size_px, size_px),
        mode="bilinear",
        align_corners=False,
        antialias=antialias and size_px < max(x.shape[-2:]),
    )
