"""Colour mode of a run: colour (``rgb``) or greyscale (``grey``) targets and reconstructions.

``data.colour`` is ``auto`` (default), ``rgb`` or ``grey``. ``auto`` becomes ``grey``
when every training stimulus is greyscale (after loading, all three channels equal:
an 8-bit or 16-bit greyscale file, or a colour file whose R, G and B agree), else
``rgb``. Training resolves it once and writes the result into the run's config, so
``reconstruct``, ``evaluate`` and ``report`` follow the mode training used.

In grey mode the targets are luminance (:func:`e2e_recon.data.images.grey_uint8`:
ITU-R BT.601 weights, Pillow's ``convert("L")``), kept in three equal channels where
a network takes RGB input (comparator, discriminator); the generator's output is made
exactly grey (:func:`e2e_recon.data.images.grey_caffe_tensor`); reconstructions are
saved as 8-bit greyscale images and scored in grey.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from e2e_recon.data.images import grey_uint8
from e2e_recon.errors import ConfigError

__all__ = ["COLOUR_MODES", "check_colour", "grey_training_set", "is_grey", "resolve_colour"]

COLOUR_MODES = ("auto", "rgb", "grey")

#: Images checked per slice: bounds the temporary comparison arrays of a large cache.
_CHUNK = 256


def check_colour(value: str, key: str = "data.colour") -> str:
    """Return ``value`` if it is a colour mode; ConfigError naming ``key`` otherwise."""
    if value not in COLOUR_MODES:
        raise ConfigError(
            f"{key}={value!r}; use auto (grey when every training stimulus is greyscale), "
            "rgb or grey"
        )
    return value


def is_grey(images: np.ndarray) -> bool:
    """True if every image has three equal channels, shape (M, H, W, 3)."""
    for start in range(0, len(images), _CHUNK):
        part = np.asarray(images[start : start + _CHUNK])
        if not ((part[..., 0] == part[..., 1]).all() and (part[..., 1] == part[..., 2]).all()):
            return False
    return True


def resolve_colour(setting: str, *image_sets: np.ndarray | None) -> tuple[str, str | None]:
    """The colour mode for ``data.colour`` = ``setting`` and these training stimuli.

    Parameters
    ----------
    setting : "auto", "rgb" or "grey"
    *image_sets : ndarray, shape (M, H, W, 3), uint8, or None
        The training stimuli as loaded (any channel order); None is skipped.

    Returns
    -------
    mode : "rgb" or "grey"
    note : str or None
        One line saying what ``auto`` chose and how to change it (None for rgb/grey).
    """
    check_colour(setting)
    if setting != "auto":
        return setting, None
    if all(is_grey(images) for images in image_sets if images is not None):
        return "grey", (
            "data.colour auto: every training stimulus is greyscale, so targets, "
            "reconstructions and scores are grey (set data.colour=rgb to keep three channels)"
        )
    return "rgb", None


def grey_training_set(training: Any) -> Any:
    """A :class:`~e2e_recon.data.dataset.TrainingSet` with grey images (and validation images).

    The images become in-memory arrays (the cache keeps the original colours).
    """
    training.images = grey_uint8(np.asarray(training.images))  # (M, S, S, 3), equal channels
    if training.val is not None and training.val.images is not None:
        training.val.images = grey_uint8(np.asarray(training.val.images))
    return training
