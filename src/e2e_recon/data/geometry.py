"""How stimuli become targets: recorded once, read by every later stage.

A run turns each stimulus image into a training target in one way: resized to
``image_size_px`` (bilinear), then cropped to ``crop_px`` (random crops while
training, the centre crop at test time; 248 and 227 px in the paper). The
generator's output, the ridge baseline's targets, the validation targets and
the stimuli that ``evaluate`` scores against must all be that same centre crop,
or two methods of one run are scored on different pixels. So the geometry is
taken from the run's config, written beside the reconstructions
(``geometry.json``) by ``reconstruct``, and read back by ``evaluate``; explicit
values override it, with a notice.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from e2e_recon.data.images import center_crop_uint8
from e2e_recon.errors import DataError
from e2e_recon.fileio import atomic_write_text

GEOMETRY_FILE = "geometry.json"
GEOMETRY_FORMAT = "e2e-recon/geometry"
#: Colour modes a geometry records (``data.colour: auto`` is resolved by training).
GEOMETRY_COLOURS = ("rgb", "grey")
#: Where a geometry came from when nothing recorded one.
PAPER_SOURCE = "the paper's defaults (no geometry.json beside the reconstructions)"


@dataclass(frozen=True)
class ImageGeometry:
    """How stimuli become targets.

    Attributes
    ----------
    image_size_px : int
        Stimuli are resized to this square (bilinear), as for training.
    crop_px : int
        Then centre-cropped to this: the region a reconstruction depicts.
    colour : str
        ``"rgb"``: targets are 3-channel colour images; ``"grey"``: luminance (ITU-R
        BT.601, as Pillow's ``convert("L")``), reconstructions and scores in grey.
    resolution_px : int or None
        Common resolution of the second pixel-identification figure.
    source : str
        Where these values came from (a run's config, a model, explicit options).
    """

    image_size_px: int = 248
    crop_px: int = 227
    colour: str = "rgb"
    resolution_px: int | None = 64
    source: str = PAPER_SOURCE

    def __post_init__(self) -> None:
        if self.image_size_px < 1 or not 1 <= self.crop_px <= self.image_size_px:
            raise DataError(
                f"image geometry: resize {self.image_size_px} px, crop {self.crop_px} px; the "
                "crop must be at least 1 px and at most the resized size"
            )
        if self.colour not in GEOMETRY_COLOURS:
            raise DataError(
                f"image geometry: colour {self.colour!r}; expected one of {GEOMETRY_COLOURS}"
            )

    @classmethod
    def from_config(cls, cfg: Any, source: str = "the run's config") -> ImageGeometry:
        """The geometry of a :class:`~e2e_recon.config.Config` (``data`` and ``eval``)."""
        resolution = int(cfg.eval.resolution_px) or None
        colour = _recorded_colour(getattr(cfg.data, "colour", "rgb"))
        return cls(int(cfg.data.image_size_px), int(cfg.data.crop_px), colour, resolution, source)

    @classmethod
    def from_config_dict(cls, raw: dict[str, Any], source: str) -> ImageGeometry:
        """The geometry of a config stored as a plain dict (in a model file)."""
        data, evaluation = raw.get("data", {}), raw.get("eval", {})
        defaults = cls()
        return cls(
            int(data.get("image_size_px", defaults.image_size_px)),
            int(data.get("crop_px", defaults.crop_px)),
            _recorded_colour(data.get("colour", "rgb")),
            int(evaluation.get("resolution_px", defaults.resolution_px or 0)) or None,
            source,
        )

    def describe(self) -> str:
        """One line: ``resize 72 px (bilinear), centre 64 px, rgb``."""
        return f"resize {self.image_size_px} px (bilinear), centre {self.crop_px} px, {self.colour}"

    def with_overrides(
        self, image_size_px: int | None = None, crop_px: int | None = None
    ) -> tuple[ImageGeometry, list[str]]:
        """This geometry with explicit values; also one notice per value that changed."""
        given = {"image_size_px": image_size_px, "crop_px": crop_px}
        changes: dict[str, Any] = {
            k: v for k, v in given.items() if v is not None and v != getattr(self, k)
        }
        if not changes:
            return self, []
        notices = [
            f"{key} {getattr(self, key)} from {self.source} overridden by {value}"
            for key, value in changes.items()
        ]
        return replace(self, **changes, source="explicit options"), notices

    def target_crops(self, resized: np.ndarray) -> np.ndarray:
        """Centre crops of images already resized to ``image_size_px``, (..., crop, crop, C)."""
        if resized.shape[-3] != self.image_size_px or resized.shape[-2] != self.image_size_px:
            raise DataError(
                f"images of {resized.shape[-3]}x{resized.shape[-2]} px given where this geometry "
                f"resizes to {self.image_size_px} px"
            )
        return center_crop_uint8(resized, self.crop_px)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record written beside reconstructions."""
        return {"format": GEOMETRY_FORMAT, "version": 1, **asdict(self)}


def _recorded_colour(setting: Any) -> str:
    """``grey`` for a config that trained in grey; ``rgb`` otherwise.

    Training writes the resolved mode into the run's config; ``auto`` is left only in
    configs that never trained (and in those of runs older than ``data.colour``), whose
    generators output colour.
    """
    return "grey" if setting == "grey" else "rgb"


def write_geometry(folder: Path, geometry: ImageGeometry) -> Path:
    """Write ``folder/geometry.json`` atomically; return its path."""
    path = Path(folder) / GEOMETRY_FILE
    atomic_write_text(path, json.dumps(geometry.to_dict(), indent=2) + "\n")
    return path


def read_geometry(folder: Path) -> ImageGeometry | None:
    """The geometry recorded in ``folder/geometry.json``, or None when there is none."""
    path = Path(folder) / GEOMETRY_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("format") != GEOMETRY_FORMAT:
            raise ValueError(f"format {raw.get('format')!r}, expected {GEOMETRY_FORMAT!r}")
        return ImageGeometry(
            int(raw["image_size_px"]),
            int(raw["crop_px"]),
            str(raw.get("colour", "rgb")),
            int(raw["resolution_px"]) if raw.get("resolution_px") else None,
            f"{path}",
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, DataError) as exc:
        raise DataError(
            f"{path}: not a geometry record ({exc}); rerun 'e2e-recon reconstruct' or delete it "
            "and pass --image-size-px and --crop-px to 'e2e-recon evaluate'"
        ) from exc
