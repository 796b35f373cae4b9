"""Numeric settings checked before a run writes anything.

Values PyTorch or the data pipeline would reject only later (with a traceback), or
accept silently although nothing can come of them, are refused here with the key,
the value and what to use instead.
"""

from __future__ import annotations

from e2e_recon.config import Config
from e2e_recon.errors import ConfigError
from e2e_recon.runs import warn

_EVERY = ("snapshot_every_iters", "log_every_iters", "grid_every_iters", "val_every_iters")


def check_values(cfg: Config, warnings: bool = True) -> None:
    """Refuse impossible learning rates, image sizes and intervals; warn on ``train.lr=0``.

    ``warnings=False`` checks without warning, for a first check before the run
    starts (training checks again, and warns then).

    Raises
    ------
    ConfigError
        Naming the key and value.
    """
    t, d = cfg.train, cfg.data
    if not t.lr >= 0.0:  # also NaN
        raise ConfigError(f"train.lr={t.lr}: use a positive learning rate, e.g. 2e-4")
    if t.lr == 0.0 and warnings:
        warn("train.lr=0: the networks will not change; use a positive value, e.g. 2e-4")
    for key in ("image_size_px", "crop_px"):
        if getattr(d, key) < 1:
            raise ConfigError(f"data.{key}={getattr(d, key)}: use a positive size in pixels")
    if d.crop_px > d.image_size_px:
        raise ConfigError(
            f"data.crop_px={d.crop_px} is larger than data.image_size_px={d.image_size_px}: "
            "the crop is taken from the resized image; use crop_px <= image_size_px"
        )
    for key in _EVERY:
        if getattr(t, key) < 0:
            raise ConfigError(f"train.{key}={getattr(t, key)}: use 0 (never) or a positive count")
