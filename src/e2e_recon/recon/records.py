"""Records written beside reconstructions: the ridge baseline's settings, geometry checks.

``ridge.json`` says how the baseline was fitted (the chosen alpha and its grid, the
decoded size, the selection rule), so that ``evaluate`` and the report can show it
next to the scores. :func:`check_geometry` refuses to mix,
in one folder, reconstructions made for different target geometries: their
scores would not be comparable.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from e2e_recon.data.geometry import ImageGeometry, read_geometry
from e2e_recon.errors import DataError
from e2e_recon.fileio import atomic_write_text
from e2e_recon.recon.baselines import RidgeDecoder
from e2e_recon.recon.reconstruct import read_index

RIDGE_RECORD = "ridge.json"
RIDGE_SELECTION = (
    "alpha with the least squared error, by exact leave-one-image-out cross-validation, "
    "of each held-out image predicted from the average of its presentations"
)


def write_ridge_record(out_dir: Path, decoder: RidgeDecoder) -> Path:
    """Write ``out_dir/ridge.json`` describing a fitted decoder."""
    record = {
        "method": "ridge",
        "decode_px": decoder.decode_px,
        "components": int(decoder.components_.shape[0]),
        "alpha": decoder.alpha_,
        "alpha_grid": [float(a) for a in decoder.alphas_],
        "selection": RIDGE_SELECTION,
    }
    path = Path(out_dir) / RIDGE_RECORD
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def read_ridge_record(out_dir: Path) -> dict[str, Any] | None:
    """The content of ``out_dir/ridge.json``, or None when absent or unreadable."""
    path = Path(out_dir) / RIDGE_RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def check_out_folder(out_dir: Path) -> None:
    """Refuse a non-empty ``--out`` that holds no reconstructions (no readable ``index.csv``).

    Reconstruct writes ``index.csv``, ``geometry.json``, ``ridge.json`` and a folder per
    method there: among a user's own files it could replace theirs. A folder an earlier
    ``reconstruct`` wrote is added to (other methods' rows stay).
    """
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    index = out_dir / "index.csv"
    if not index.is_file():
        raise DataError(
            f"--out {out_dir} is not empty and holds no reconstructions (no index.csv); give a "
            "new or empty folder, or one 'e2e-recon reconstruct' wrote"
        )
    read_index(index)  # a CSV of the user's own is refused here, before anything is written


def check_geometry(out_dir: Path, geometry: ImageGeometry, methods: Collection[str]) -> None:
    """Refuse to add reconstructions of another geometry to a folder that keeps others.

    Reconstructions of ``methods`` replace their own earlier rows; rows of other
    methods stay in the index, so they must have been made for the same targets.
    """
    recorded = read_geometry(out_dir)
    index = Path(out_dir) / "index.csv"
    if recorded is None or not index.is_file():
        return
    same = (recorded.image_size_px, recorded.crop_px, recorded.colour) == (
        geometry.image_size_px,
        geometry.crop_px,
        geometry.colour,
    )
    others = sorted({r["method"] for r in read_index(index)} - set(methods))
    if not same and others:
        raise DataError(
            f"{out_dir} holds reconstructions ({', '.join(others)}) made for targets "
            f"'{recorded.describe()}'; these are for '{geometry.describe()}', so the two could "
            "not be scored on the same pixels. Write them to another --out folder"
        )
