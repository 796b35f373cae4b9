"""Stimulus folders and the preprocessed-image cache.

:func:`find_image_files` finds each stimulus's file in a folder tree;
:func:`cached_bgr_images` resizes them once into a uint8 BGR memmap under the data
home, keyed by the files and the size, so that later runs read pixels directly.
Split from ``images.py``, which keeps the pixel operations.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from e2e_recon.data.images import load_image
from e2e_recon.data.labels import IMAGE_SUFFIXES
from e2e_recon.errors import DataError
from e2e_recon.fileio import atomic_path

__all__ = ["cached_bgr_images", "find_image_files"]

#: Bumped whenever the cached pixels would change for the same inputs.
_CACHE_FORMAT = 2  # 2: 16-bit greyscale images scaled instead of clipped


def find_image_files(images_dir: str | os.PathLike[str], names: Sequence[str]) -> list[Path]:
    """Find the image file of each stimulus name (``<name>.<any image extension>``).

    The folder is searched with its subfolders (the data home keeps
    ``images/{training,test,artificial,letters}/``); hidden folders such as the
    image cache are skipped, and a file directly in the folder wins over one deeper.
    Two files of one stimulus at the same depth (``x.JPEG`` and ``x.png``) are an
    error: which one is meant cannot be guessed.

    Parameters
    ----------
    images_dir : str or Path
    names : sequence of str
        Stimulus names, for example ``["n01518878_5958", ...]``.

    Returns
    -------
    list of Path, one per name

    Raises
    ------
    DataError
        If the folder is missing, or any name has no file (the message names the
        missing labels and the file names expected, ``<name>.JPEG``), or a name has two files
        at the same depth (the message names both).
    """
    folder = Path(images_dir)
    if not folder.is_dir():
        raise DataError(f"Image folder not found: {folder}.")
    by_stem = _index_image_files(folder)
    missing = [n for n in names if n not in by_stem]
    if missing:
        shown = ", ".join(f"{n} (expected {folder / (n + '.JPEG')})" for n in missing[:5])
        raise DataError(
            f"{len(missing)} of {len(names)} stimuli have no image file in {folder}: {shown}"
            f"{' ...' if len(missing) > 5 else ''}. Put the stimulus images there, named by "
            "stimulus (any image extension)."
        )
    _refuse_ambiguous(names, by_stem)
    return [by_stem[n][0] for n in names]


def _refuse_ambiguous(names: Sequence[str], by_stem: dict[str, list[Path]]) -> None:
    """One stimulus with two files at the same depth (``x.JPEG`` and ``x.png``) is an error."""
    ambiguous = [n for n in dict.fromkeys(names) if len({p.name for p in by_stem[n]}) > 1]
    if ambiguous:
        shown = "; ".join(" and ".join(str(p) for p in by_stem[n]) for n in ambiguous[:5])
        raise DataError(
            f"{len(ambiguous)} stimuli have more than one image file: {shown}"
            f"{' ...' if len(ambiguous) > 5 else ''}. Keep one file per stimulus."
        )


def _index_image_files(folder: Path) -> dict[str, list[Path]]:
    """Map file stem -> image files under ``folder`` with that stem, at its shallowest depth."""
    by_stem: dict[str, list[Path]] = {}
    depth_of: dict[str, int] = {}
    for root, dirs, files in sorted(os.walk(folder), key=lambda item: item[0].count(os.sep)):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        depth = root.count(os.sep)
        for name in sorted(files):
            path = Path(root) / name
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if depth_of.setdefault(path.stem, depth) == depth:
                by_stem.setdefault(path.stem, []).append(path)
    return by_stem


def _cache_key(paths: Sequence[Path], size_px: int) -> str:
    """Hash of file names, sizes and modification times, and the preprocessing settings."""
    items = []
    for path in paths:
        stat = path.stat()
        items.append([path.name, stat.st_size, stat.st_mtime_ns])
    blob = json.dumps({"format": _CACHE_FORMAT, "size_px": size_px, "files": items})
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cached_bgr_images(
    paths: Sequence[Path], size_px: int, cache_dir: str | os.PathLike[str]
) -> np.ndarray:
    """Load, resize and stack images as BGR uint8, through an on-disk cache.

    The cache is one ``.npy`` file named by a hash of the files' names, sizes and
    modification times and of ``size_px``: a second call decodes nothing and returns
    a memory map. The file is written under a temporary name and renamed, so an
    interrupted build leaves no partial cache.

    Parameters
    ----------
    paths : sequence of Path
    size_px : int
    cache_dir : str or Path
        Created if needed.

    Returns
    -------
    ndarray (numpy.memmap, copy-on-write), shape (len(paths), size_px, size_px, 3), uint8, BGR
    """
    folder = Path(cache_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"Cannot create the image cache folder {folder} ({err}); give a writable cache_dir."
        ) from err
    target = folder / f"images-{size_px}px-{len(paths)}-{_cache_key(paths, size_px)}.npy"
    if not target.exists():
        _build_cache(paths, size_px, target)
    return np.load(target, mmap_mode="c")


def _build_cache(paths: Sequence[Path], size_px: int, target: Path) -> None:
    with atomic_path(target) as tmp:
        _fill_cache_file(str(tmp), paths, size_px)


def _fill_cache_file(file_name: str, paths: Sequence[Path], size_px: int) -> None:
    out = np.lib.format.open_memmap(
        file_name, mode="w+", dtype=np.uint8, shape=(len(paths), size_px, size_px, 3)
    )

    def fill(i: int) -> None:
        out[i] = load_image(paths[i], size_px)[..., ::-1]  # RGB -> BGR

    # Pillow releases the GIL while decoding and resizing, so threads help.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(fill, range(len(paths))))
    out.flush()
