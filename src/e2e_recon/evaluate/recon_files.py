"""Files of an evaluation: the reconstruction index, reconstructions, stimulus images, outputs."""

from __future__ import annotations

import csv
import filecmp
import io
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from PIL import Image

from e2e_recon.data.images import center_crop_uint8, display_image, load_image
from e2e_recon.data.labels import IMAGE_SUFFIXES
from e2e_recon.errors import DataError
from e2e_recon.evaluate.metrics import resize_images
from e2e_recon.fileio import path_inside

STIMULUS_RESIZE_PX = 248  # training images were resized to this before cropping
STIMULUS_CROP_PX = 227  # the region a 227 px reconstruction depicts
PATH_COLUMNS = ("mat", "tif", "png")  # of index.csv: relative to its folder


def check_listed_files(recon_dir: Path, rows: list[dict[str, str]]) -> None:
    """Raise DataError naming a path that leaves ``recon_dir``, or every missing file.

    Paths in ``index.csv`` are relative to its folder and stay inside it, symlinks
    resolved: an absolute path, ``..`` out of it or a link elsewhere is refused, naming
    the row, so no file from outside ends up scored or embedded in a report. Then every
    reconstruction (``.mat``, else ``.png``) must be on disk.
    """
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        for column in PATH_COLUMNS:
            if row.get(column):
                where = (
                    f"{recon_dir / 'index.csv'} line {number} ({row.get('method')}, "
                    f"{row.get('set')}, {row.get('stimulus_name')}): {column}"
                )
                path_inside(row[column], recon_dir, where)
    missing = [
        r["mat"] or r["png"]
        for r in rows
        if not (r["mat"] or r["png"]) or not (recon_dir / (r["mat"] or r["png"])).is_file()
    ]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(
            f"{recon_dir / 'index.csv'} lists {len(missing)} reconstruction file(s) that do not "
            f"exist in {recon_dir}: {shown}; rerun 'e2e-recon reconstruct' into that folder"
        )


def find_stimuli(images_dir: Path, names: list[str]) -> dict[str, Path]:
    """Image file of each stimulus name: ``<name>.<image extension>`` anywhere below ``images_dir``.

    Identical copies in several subfolders are fine; two different files with
    the same name, or a name without any file, raise DataError naming them.
    """
    if not images_dir.is_dir():
        raise DataError(f"stimulus image folder {images_dir} not found; pass --images DIR")
    wanted = set(names)
    by_stem: dict[str, Path] = {}
    for path in sorted(images_dir.rglob("*")):
        if path.stem not in wanted or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        first = by_stem.setdefault(path.stem, path)
        if first != path and not filecmp.cmp(first, path, shallow=False):
            raise DataError(
                f"stimulus {path.stem!r} has two different images: {first} and {path}; "
                "pass the folder of the right set as --images"
            )
    missing = [n for n in names if n not in by_stem]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(
            f"{len(missing)} stimulus(es) have no image in {images_dir} or its subfolders: "
            f"{shown}; add <name>.JPEG (any image extension) for each"
        )
    return {n: by_stem[n] for n in names}


def group_rows(rows: list[dict[str, str]]) -> dict[str, dict[str, list[dict[str, str]]]]:
    """{set: {method: rows}}; sets in index order, methods e2e, snapshots, others, ridge."""
    groups: dict[str, dict[str, list[dict[str, str]]]] = {}
    for row in rows:
        groups.setdefault(row["set"], {}).setdefault(row["method"], []).append(row)

    def method_order(method: str) -> tuple[int, str]:
        rank = 0 if method == "e2e" else 1 if method.startswith("e2e") else 2
        return (3 if method.startswith("ridge") else rank, method)

    return {s: {m: g[m] for m in sorted(g, key=method_order)} for s, g in groups.items()}


def load_recons(recon_dir: Path, rows: list[dict[str, str]]) -> np.ndarray:
    """Reconstructions of index rows of one set as display images, (N, S, S, 3) float64 RGB."""
    images = [load_recon(recon_dir, row) for row in rows]
    sizes = sorted({image.shape for image in images})
    if len(sizes) > 1:
        raise DataError(f"reconstructions of one set in {recon_dir} differ in size: {sizes}")
    return np.stack(images)


def load_recon(recon_dir: Path, row: dict[str, str]) -> np.ndarray:
    """(S, S, 3) float64 RGB display image of one index row, 0-255.

    A ``.mat`` holds the raw generator output, which can lie far outside 0-255 (the
    test-time scaling by sqrt(n) raises its contrast, and an input unlike the training
    set can shift all of it below 0). It is turned into the image that is shown and
    saved as TIFF, with the published display conversion (the most extreme 0.04% of
    values clipped, then stretched to 0-255): that image is what the literature scores.
    Clipping the raw values to 0-255 instead would erase a reconstruction that is
    right in shape but shifted in brightness. A ``.png`` is already a display image.
    """
    path = path_inside(row["mat"] or row["png"], recon_dir, f"{recon_dir / 'index.csv'} path")
    try:
        if path.suffix.lower() == ".mat":
            image = display_image(np.asarray(scipy.io.loadmat(path)["gen_img"], np.float64))
        else:
            with Image.open(path) as img:
                image = np.asarray(img.convert("RGB"))
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the reconstruction ({exc})") from exc
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1]:
        raise DataError(f"{path}: reconstruction has shape {image.shape}; expected (S, S, 3)")
    return image.astype(np.float64)


def load_stimuli(
    paths: list[Path],
    size_px: int,
    resize_px: int = STIMULUS_RESIZE_PX,
    crop_px: int = STIMULUS_CROP_PX,
) -> np.ndarray:
    """Stimuli as the reconstructions depict them, (N, size_px, size_px, 3) float64 RGB.

    Resized to ``resize_px`` (bilinear, as for training; 248 in the paper), centre
    ``crop_px`` (227), then bicubic to ``size_px`` if that differs.
    """
    resized = [load_image(p, resize_px) for p in paths]
    crops = center_crop_uint8(np.stack(resized), crop_px)  # (N, crop, crop, 3)
    if size_px != crop_px:
        return np.clip(resize_images(crops, size_px), 0.0, 255.0).astype(np.float64)
    return crops.astype(np.float64)


def csv_text(rows: list[dict[str, Any]], metric_keys: list[str]) -> str:
    """``per_image.csv`` content: index columns, then one column per metric."""
    buffer = io.StringIO()
    fields = ["set", "method", "stimulus_id", "stimulus_name", "n_trials", *metric_keys]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
