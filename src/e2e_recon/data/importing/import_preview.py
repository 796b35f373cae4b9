"""What an import shows a person before training: a contact sheet and how flat images were read.

The order of a flat image (one image per row, ``H*W`` values) cannot be read from the
file: a square image read in the wrong order is the right one transposed, which looks
just as much like an image. So the import says how it reshaped them, which option
reads them the other way, and writes ``OUT/preview.png``: the first training and test
images with their names, to look at before training.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from e2e_recon.data.importing.layouts import flat_to_images
from e2e_recon.data.labels import IMAGE_SUFFIXES
from e2e_recon.fileio import atomic_path

__all__ = ["PREVIEW_NAME", "flat_images_note", "preview_summary", "write_preview"]

PREVIEW_NAME = "preview.png"
#: Images per row of the contact sheet (training, then test).
PREVIEW_COUNT = 8
_THUMB_PX = 96
_LABEL_PX = 14
#: One order is "clearly smoother" when its neighbour differences are this much smaller.
_SMOOTHER = 0.8


def preview_summary(
    out_dir: str | Path,
    summary: dict[str, Any],
    flat: Sequence[np.ndarray] = (),
    shape: tuple[int, int] | None = None,
    order: str = "C",
) -> dict[str, str]:
    """Write the preview of an import and return its summary lines.

    Parameters
    ----------
    out_dir : path
        The import's output folder.
    summary : dict
        What :func:`~e2e_recon.data.importing.import_writer.write_import` returned (its
        ``training_images_dir`` and ``test_images_dir``).
    flat : sequence of ndarray
        The flat image arrays (n, H*W[*3]) that were reshaped, if any.
    shape, order :
        How they were reshaped (``--images-shape``, ``--images-order``).

    Returns
    -------
    dict
        ``preview`` (where it is and what to look for) and, for flat images,
        ``images_reshaped`` (how, and the option that reads them the other way).
    """
    folders = [
        (label, Path(summary[key]))
        for label, key in (("training", "training_images_dir"), ("test", "test_images_dir"))
        if summary.get(key)
    ]
    path = write_preview(Path(out_dir) / PREVIEW_NAME, folders)
    lines = {"preview": f"{path}: the first training and test images with their names"}
    if flat:
        lines["images_reshaped"] = flat_images_note(flat, shape, order)
        lines["preview"] += "; check that they are upright before training"
    return lines


def flat_images_note(flat: Sequence[np.ndarray], shape: tuple[int, int] | None, order: str) -> str:
    """How flat images were reshaped, and whether the other order is as plausible.

    A square image read in the other order is its transpose, so both orders give
    plausible images and only a person can tell which is upright. For other shapes
    the wrong order scrambles the rows; the smoother order is then named.
    """
    order = order.upper()
    other = "F" if order == "C" else "C"
    names = {"C": "row-major (C)", "F": "column-major (F, MATLAB)"}
    rows = np.concatenate([np.asarray(a)[:64].astype(np.float64) for a in flat])
    mine = flat_to_images(rows, shape, order)  # (n, H, W[, 3])
    theirs = flat_to_images(rows, shape, other)
    h, w = mine.shape[1:3]
    text = (
        f"flat rows of {rows.shape[1]} values reshaped to {h} x {w}, read {names[order]}; "
        f"--images-order {other} reads them {names[other]}"
    )
    if h == w:
        return (
            f"{text}, which transposes every image. Both orders give plausible images "
            "(each is the other mirrored about its diagonal): the file cannot say which is "
            "upright, so look at the preview"
        )
    rough_mine, rough_theirs = _roughness(mine), _roughness(theirs)
    if rough_theirs < _SMOOTHER * rough_mine:
        return (
            f"{text}. The images read {names[order]} look scrambled (neighbouring pixels "
            f"differ {rough_mine / max(rough_theirs, 1e-12):.1f} times as much as read "
            f"{names[other]}): import again with --images-order {other}"
        )
    if rough_mine < _SMOOTHER * rough_theirs:
        return f"{text}, which scrambles them; look at the preview to be sure"
    return f"{text}; both orders give plausible images: look at the preview"


def _roughness(images: np.ndarray) -> float:
    """Mean absolute difference of neighbouring pixels (both axes), relative to the spread."""
    x = images.astype(np.float64)
    diffs = np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=2)).mean()
    return float(diffs / max(float(x.std()), 1e-12))


def write_preview(path: Path, folders: Sequence[tuple[str, Path]]) -> Path:
    """A contact sheet: per folder, one row of its first images, each with its file name.

    Parameters
    ----------
    path : Path
        Where to write the PNG (atomically).
    folders : sequence of (label, folder)
        The image folders of the import, in row order.

    Returns
    -------
    Path
    """
    from PIL import Image, ImageDraw

    rows = [(label, _first_images(folder)) for label, folder in folders]
    columns = max([len(files) for _, files in rows] + [1])
    cell_h = _THUMB_PX + _LABEL_PX + 4
    title_h = _LABEL_PX + 4
    sheet = Image.new(
        "RGB",
        (columns * (_THUMB_PX + 4) + 4, len(rows) * (cell_h + title_h) + 4),
        "white",
    )
    draw = ImageDraw.Draw(sheet)
    y = 4
    for label, files in rows:
        draw.text((4, y), f"{label} ({len(files)} first images)", fill="black")
        y += title_h
        for i, file in enumerate(files):
            with Image.open(file) as image:
                # Nearest-neighbour: small images (28 px digits) stay sharp, pixel for pixel.
                thumb = image.convert("RGB").resize(
                    (_THUMB_PX, _THUMB_PX), Image.Resampling.NEAREST
                )
            x = 4 + i * (_THUMB_PX + 4)
            # A grey frame, so that a white edge (a digit's background) is still seen.
            draw.rectangle((x - 1, y - 1, x + _THUMB_PX, y + _THUMB_PX), outline=(128, 128, 128))
            sheet.paste(thumb, (x, y))
            draw.text((x, y + _THUMB_PX + 2), _short(file.stem), fill="black")
        y += cell_h
    with atomic_path(path) as tmp:
        sheet.save(tmp)
    return path


def _first_images(folder: Path) -> list[Path]:
    """The first images of a folder, in the order of the numbers in their names."""
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=_natural_key)[:PREVIEW_COUNT]


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.stem)]


def _short(name: str) -> str:
    """A name that fits under a thumbnail (about 15 characters at the default font)."""
    return name if len(name) <= 15 else f"{name[:6]}...{name[-6:]}"
