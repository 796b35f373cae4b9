"""Images: loading, resizing, cropping, and the conversion to and from Caffe space.

This module is the only place where colour order and channel means change.
"Caffe space" is what all three networks see and what the generator outputs:
float32, BGR channel order, 0-255 scale, minus the per-channel mean
B 104, G 117, R 123.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from e2e_recon.errors import DataError

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


# --------------------------------------------------------------------------------------------
# Greyscale: luminance with the ITU-R BT.601 weights, as Pillow's convert("L")
# --------------------------------------------------------------------------------------------

#: Luma weights of ITU-R BT.601 (R, G, B), the ones Pillow's ``convert("L")`` uses.
LUMA_WEIGHTS_RGB: tuple[float, float, float] = (0.299, 0.587, 0.114)


def grey_uint8(images: np.ndarray, order: str = "bgr") -> np.ndarray:
    """Luminance of channels-last uint8 images, repeated in all three channels.

    Pillow's integer arithmetic (``convert("L")``: weights 19595, 38470, 7471 out of
    65536, rounded), so a colour stimulus becomes exactly the grey image Pillow makes.

    Parameters
    ----------
    images : ndarray, shape (..., H, W, 3), uint8
    order : "bgr" (the image cache) or "rgb"

    Returns
    -------
    ndarray, shape (..., H, W, 3), uint8, three equal channels
    """
    x = np.asarray(images, dtype=np.uint32)
    if order == "bgr":
        x = x[..., ::-1]  # (..., H, W, 3) RGB
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    luma = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)  # (..., H, W)
    return np.repeat(luma[..., None], 3, axis=-1)


def grey_float(images: np.ndarray) -> np.ndarray:
    """Luminance of channels-last RGB float images (any scale), repeated in three channels.

    Parameters
    ----------
    images : ndarray, shape (..., H, W, 3), RGB

    Returns
    -------
    ndarray, shape (..., H, W, 3), float64, three equal channels
    """
    luma = np.asarray(images, dtype=np.float64) @ np.asarray(LUMA_WEIGHTS_RGB)  # (..., H, W)
    return np.repeat(luma[..., None], 3, axis=-1)


def grey_caffe_tensor(x: torch.Tensor) -> torch.Tensor:
    """The nearest exactly grey image of a Caffe-space batch: equal B, G and R values.

    Each pixel's three 0-255 values are replaced by their mean; differentiable. A
    grey image has different values in Caffe space (each channel minus its own
    mean), which is why this cannot be a plain mean over the channels.

    Parameters
    ----------
    x : Tensor, shape (B, 3, H, W), BGR, mean-subtracted

    Returns
    -------
    Tensor, shape (B, 3, H, W), Caffe space, B = G = R once the means are added back
    """
    mean = torch.tensor(CAFFE_MEAN_BGR, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    level = (x + mean).mean(dim=1, keepdim=True)  # (B, 1, H, W), 0-255 scale
    return level - mean  # (B, 3, H, W)


# --------------------------------------------------------------------------------------------
# Loading, resizing and cropping (uint8 images, channels last)
# --------------------------------------------------------------------------------------------


def load_image(path: str | os.PathLike[str], size_px: int | None) -> np.ndarray:
    """Load any image Pillow reads as RGB uint8, resized to a square with bilinear filtering.

    Greyscale, palette, CMYK and RGBA images become 3-channel RGB (alpha is dropped);
    16-bit images are scaled to 8 bits. Images whose pixel range is not known
    (32-bit integer or floating-point pixels) are refused.
    The resize is Pillow's bilinear filter, the one behind the reference code's
    ``scipy.misc.imresize(img, (248, 248), interp='bilinear')``.

    Parameters
    ----------
    path : str or Path
    size_px : int or None
        Output side length (248 in the paper preset); None keeps the original size.

    Returns
    -------
    ndarray, shape (size_px, size_px, 3), uint8, RGB

    Raises
    ------
    DataError
        If the file is missing, cannot be decoded or has an unsupported pixel mode
        (the message names the file).
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            rgb = _as_rgb(img, path)
    except FileNotFoundError:
        raise DataError(f"Image file not found: {path}.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(
            f"Cannot decode image {path} ({err}). Replace it with a readable image "
            "(JPEG, PNG, ...) or remove its samples from the data."
        ) from err
    if size_px is not None and rgb.size != (size_px, size_px):
        rgb = rgb.resize((size_px, size_px), resample=Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


#: Modes Pillow converts to 8-bit RGB correctly (alpha dropped, palette looked up,
#: CMYK, YCbCr, HSV and LAB converted). 16-bit RGB(A) and LA PNGs already load as RGB(A)/LA.
_CONVERTIBLE_MODES = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX"})
_CONVERTIBLE_MODES |= {"CMYK", "YCbCr", "HSV", "LAB"}


def _as_rgb(img: Image.Image, path: Path) -> Image.Image:
    """8-bit RGB of any image mode with a known scale; other modes are refused.

    Pillow's own conversion clips 16-bit and 32-bit greyscale at 255 (a 16-bit
    PNG would become all white), so those are scaled here: 0-65535 to 0-255.
    """
    if img.mode in _CONVERTIBLE_MODES:
        return img.convert("RGB")
    # 16-bit greyscale ("I;16*"), or "I" from a PNG, which holds at most 16 bits.
    if img.mode.startswith("I;16") or (img.mode == "I" and img.format == "PNG"):
        grey = np.asarray(img).astype(np.float64)
        if grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise DataError(f"Image {path}: 16-bit values outside 0-65535 ({img.mode}).")
        grey8 = np.round(grey * (255.0 / 65535.0)).astype(np.uint8)
        return Image.fromarray(grey8).convert("RGB")
    raise DataError(
        f"Image {path} has pixel mode {img.mode!r} ({img.format}), whose value range is not "
        "known (32-bit integer or floating-point pixels). "
        "Convert it to an 8- or 16-bit RGB or greyscale PNG or a JPEG."
    )


def rgb_to_bgr_uint8(images: np.ndarray) -> np.ndarray:
    """Swap channel order RGB <-> BGR of channels-last uint8 images, shape (..., H, W, 3)."""
    return np.ascontiguousarray(np.asarray(images)[..., ::-1])


def center_crop_uint8(images: np.ndarray, crop_px: int) -> np.ndarray:
    """Centre crop of channels-last images, offset (S - crop) // 2 like the generator's crop.

    Parameters
    ----------
    images : ndarray, shape (..., S, S, 3)
    crop_px : int

    Returns
    -------
    ndarray, shape (..., crop_px, crop_px, 3), same dtype
    """
    height, width = images.shape[-3], images.shape[-2]
    if crop_px > min(height, width):
        raise DataError(f"Crop of {crop_px} px is larger than the {height}x{width} images.")
    top, left = (height - crop_px) // 2, (width - crop_px) // 2
    return images[..., top : top + crop_px, left : left + crop_px, :]


def display_image(rgb: np.ndarray, clip_percent: float = 0.04) -> np.ndarray:
    """The published display conversion: clip the most extreme values, stretch to 0-255.

    This is how reconstructions become the 8-bit images that are shown and scored
    (the lab's evaluation reads these TIFFs, not the raw ``gen_img`` arrays).

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), float
    clip_percent : float
        Percent of all pixel values clipped in total, half at each end.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    low, high = np.percentile(rgb, [clip_percent / 2, 100 - clip_percent / 2])
    if high <= low:
        return np.zeros(rgb.shape, dtype=np.uint8)
    stretched = (np.clip(rgb, low, high) - low) / (high - low) * 255.0
    return np.round(stretched).astype(np.uint8)


def random_crop_uint8(image: np.ndarray, crop_px: int, rng: np.random.Generator) -> np.ndarray:
    """One random crop (uniform offset, no mirroring) of a channels-last image (S, S, 3)."""
    height, width = image.shape[-3], image.shape[-2]
    if crop_px > min(height, width):
        raise DataError(f"Crop of {crop_px} px is larger than the {height}x{width} image.")
    top = int(rng.integers(0, height - crop_px + 1))
    left = int(rng.integers(0, width - crop_px + 1))
    return image[..., top : top + crop_px, left : left + crop_px, :]


def bgr_uint8_tensor_to_caffe(crops: torch.Tensor) -> torch.Tensor:
    """BGR uint8 crops, channels last, to Caffe space, channels first.

    Parameters
    ----------
    crops : Tensor, shape (B, H, W, 3), uint8, BGR

    Returns
    -------
    Tensor, shape (B, 3, H, W), float32, BGR, mean-subtracted
    """
    mean = torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float32)
    x = crops.to(torch.float32) - mean  # (B, H, W, 3)
    return x.permute(0, 3, 1, 2).contiguous()  # (B, 3, H, W)


def crops_bgr_uint8_to_caffe(
    images: torch.Tensor,
    rows: torch.Tensor,
    tops: torch.Tensor,
    lefts: torch.Tensor,
    crop_px: int,
) -> torch.Tensor:
    """Cut crops from BGR uint8 images and convert them to Caffe space, on the images' device.

    Two batched operations wherever ``images`` lives (CPU memory, a memory-mapped
    cache, or a GPU): one advanced index into a strided view of every possible crop
    window (no Python loop, no copy of the images), then one subtraction that writes
    float32 directly. The result is channels-last in memory (a permuted view of the
    (B, crop, crop, 3) batch), which is the layout the networks train in
    (``train.channels_last``); callers that need NCHW-contiguous data call
    ``.contiguous()``. The channel means are tiled along each pixel row so that the
    subtraction runs over rows of ``crop * 3`` values rather than pixels of 3, which
    measured 1.5-2x faster on CPU.

    Parameters
    ----------
    images : Tensor, shape (M, S, S, 3), uint8, BGR (may be memory-mapped)
    rows, tops, lefts : Tensor, shape (B,), int64, on any device
        Image index and top-left corner of each crop.
    crop_px : int

    Returns
    -------
    Tensor, shape (B, 3, crop_px, crop_px), float32, Caffe space, channels-last memory,
    on ``images.device``
    """
    device, c = images.device, crop_px
    m, s_y, s_x, _ = images.shape
    st = images.stride()
    # windows[i, y, x] is the crop of image i at (y, x), rows of c pixels * 3 channels
    # (requires each pixel's 3 channels to be adjacent, as in the cache).
    if st[3] != 1 or st[2] != 3:
        images = images.contiguous()
        st = images.stride()
    windows = images.as_strided(
        (m, s_y - c + 1, s_x - c + 1, c, c * 3),
        (st[0], st[1], st[2], st[1], 1),
        images.storage_offset(),
    )  # (M, S - c + 1, S - c + 1, c, c * 3), a view
    picked = windows[rows.to(device), tops.to(device), lefts.to(device)]  # (B, c, c * 3) uint8
    mean = torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float32, device=device).repeat(c)  # (c*3,)
    out = torch.sub(picked, mean)  # (B, c, c * 3) float32
    return out.view(-1, c, c, 3).permute(0, 3, 1, 2)  # (B, 3, c, c), channels-last memory
