"""Images: loading, resizing, cropping, and the conversion to and from Caffe space.

This module is the only place where colour order and channel means change.
"Caffe space" is what all three networks see and what the generator outputs:
float32, BGR channel order, 0-255 scale, minus the per-channel mean
B 104, G 117, R 123.
"""

from __future__ import annotations

import numpy as np
import torch

#: Per-channel means subtracted in Caffe space, in BGR order.
CAFFE_MEAN_BGR: tuple[float, float, float] = (104.0, 117.0, 123.0)


def rgb_uint8_to_caffe(images: np.ndarray) -> np.ndarray:
    """Convert RGB uint8 images to Caffe space.

    Parameters
    ----------
    images : ndarray, shape (..., H, W, 3), uint8 or float, RGB, 0-255

    Returns
    -------
    ndarray, shape (..., 3, H, W), float32, BGR, mean-subtracted
    """
    x = np.asarray(images, dtype=np.float32)[..., ::-1]  # RGB -> BGR
    x = x - np.asarray(CAFFE_MEAN_BGR, dtype=np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def caffe_to_rgb_float(images: np.ndarray) -> np.ndarray:
    """Convert Caffe-space arrays back to RGB on the 0-255 scale, unclipped.

    Parameters
    ----------
    images : ndarray, shape (..., 3, H, W), float, BGR, mean-subtracted

    Returns
    -------
    ndarray, shape (..., H, W, 3), float32, RGB, about 0-255 (not clipped)
    """
    x = np.moveaxis(np.asarray(images, dtype=np.float32), -3, -1)
    x = x + np.asarray(CAFFE_MEAN_BGR, dtype=np.float32)
    return np.ascontiguousarray(x[..., ::-1])  # BGR -> RGB


def caffe_to_rgb_tensor(x: torch.Tensor) -> torch.Tensor:
    """Caffe space to RGB 0-255 for networks with other input conventions.

    Differentiable; used inside comparator wrappers (AlexNet, EfficientNet-Lite).

    Parameters
    ----------
    x : Tensor, shape (B, 3, H, W), BGR, mean-subtracted

    Returns
    -------
    Tensor, shape (B, 3, H, W), RGB, 0-255 scale
    """
    mean = torch.tensor(CAFFE_MEAN_BGR, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x + mean).flip(1)  # BGR -> RGB


def rgb_tensor_to_caffe(x: torch.Tensor) -> torch.Tensor:
    """RGB 0-255 tensor to Caffe space; inverse of :func:`caffe_to_rgb_tensor`.

    Parameters
    ----------
    x : Tensor, shape (B, 3, H, W), RGB, 0-255 scale

    Returns
    -------
    Tensor, shape (B, 3, H, W), BGR, mean-subtracted
    """
    mean = torch.tensor(CAFFE_MEAN_BGR, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x.flip(1) - mean
