"""Writing an import: BData files in the lab's layout, image folders, names.csv.

Shared by the array importer (:mod:`e2e_recon.data.importing.importers`) and the NIfTI importer
(:mod:`e2e_recon.data.importing.nifti`). Everything goes to a staging folder inside the output
folder first and is moved into place at the end, so a failed import leaves nothing.
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from e2e_recon.data.bdata import BData
from e2e_recon.data.image_files import find_image_files
from e2e_recon.data.importing.pairing import Pairing
from e2e_recon.data.labels import id_to_name, name_to_id
from e2e_recon.errors import DataError
from e2e_recon.fileio import atomic_write_json, is_write_failure, output_error, safe_name

__all__ = ["Volume", "write_import"]

#: Left in the output folder by an import; ``--overwrite`` replaces only folders beside it.
IMPORT_MARKER = "e2e-recon-import.json"
_LAB_NAME = re.compile(r"n\d{8}_\d{1,6}")


@dataclass
class Volume:
    """What is known of the voxels and samples beyond their values."""

    rois: dict[str, np.ndarray]
    xyz: np.ndarray | None = None  # (n_voxels, 3)
    sessions: dict[str, np.ndarray] | None = None  # per set, one session number per sample


def write_import(
    out_dir: str | Path,
    pairing: Pairing,
    volume: Volume,
    subject: str,
    images_dir: str | Path | None,
    overwrite: bool,
    set_name: str | None = None,
) -> dict[str, Any]:
    """Write BData files and image folders to a staging folder, then move them into place.

    Returns
    -------
    dict
        Paths written and counts (samples, images, voxels, non-finite values).
    """
    # Both name files: plain names only, so neither can lead outside out_dir or carry markup.
    safe_name(subject, "--subject", plain=True)
    if set_name is not None:
        safe_name(set_name, "--set-name", plain=True)
    if set_name in ("training", "train"):
        raise DataError(f"--set-name {set_name!r} is the training set's name; choose another.")
    ids = _assign_ids([k for _, keys, _ in pairing.sets.values() for k in keys])
    out = Path(out_dir)
    _check_replaceable(out, overwrite)
    created = _missing_folders(out)  # removed again if the import fails
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".import-", dir=out))
        try:
            images = (pairing.image_of, Path(images_dir) if images_dir else None)
            summary = _write_all(staging, pairing.sets, ids, images, subject, volume, set_name)
            for sub in ("fmri", "images"):
                if (out / sub).exists():
                    (out / sub).rename(staging / f"old-{sub}")
                (staging / sub).rename(out / sub)
            # Marks fmri/ and images/ as this import's own: only then may --overwrite replace them.
            atomic_write_json(out / IMPORT_MARKER, {"format": "e2e-recon-import", "version": 1})
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException as exc:
        for folder in created:  # deepest first; only folders this import made, if empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        if is_write_failure(exc):
            raise output_error(out, exc) from None
        raise
    return {k: (str(out / v) if isinstance(v, Path) else v) for k, v in summary.items()}


def _check_replaceable(out: Path, overwrite: bool) -> None:
    """Refuse existing ``fmri/`` or ``images/`` unless ``overwrite`` and an import wrote them.

    A folder of the user's own (their recordings, the downloaded data) is never replaced:
    only one beside the marker file an earlier import left.
    """
    existing = [p for p in (out / "fmri", out / "images") if p.exists()]
    if not existing:
        return
    marker = out / IMPORT_MARKER
    try:
        ours = json.loads(marker.read_text(encoding="utf-8")).get("format") == "e2e-recon-import"
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise DataError(
            f"{existing[0]} already exists and is not marked as an import's output (no "
            f"{IMPORT_MARKER} in {out}; older versions wrote none), so it is never replaced: "
            "choose another --out, or delete it by hand"
        )
    if not overwrite:
        raise DataError(f"{existing[0]} already exists; choose another --out or pass --overwrite.")


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for candidate in (folder.absolute(), *folder.absolute().parents):
        if candidate.exists():
            break
        missing.append(candidate)
    return missing


def _write_all(
    root: Path,
    sets: dict[str, tuple[np.ndarray, list[str], np.ndarray]],
    ids: dict[str, tuple[float, str]],
    images: tuple[dict[str, np.ndarray] | None, Path | None],
    subject: str,
    volume: Volume,
    set_name: str | None,
) -> dict[str, Any]:
    n_voxels = sets["training"][0].shape[1]
    names = {ident: name for ident, name in ids.values()}
    session = {"training": "perceptionNaturalImageTraining", "test": "perceptionNaturalImageTest"}
    if set_name:
        session["test"] = set_name
    summary: dict[str, Any] = {"n_voxels": n_voxels, "test_file": None}
    (root / "fmri").mkdir()
    for which, (voxels, keys, runs) in sets.items():
        rel = Path("fmri") / f"{subject}_{session[which]}_original_VC.h5"
        stim_ids = np.array([ids[k][0] for k in keys], dtype=np.float64)
        sessions = None if volume.sessions is None else volume.sessions[which]
        header_name = set_name if which == "test" else None
        _write_bdata(root / rel, voxels, stim_ids, runs, sessions, volume, names, header_name)
        folder = which if which == "training" else (set_name or "test")
        _write_image_files(keys, ids, root / "images" / folder, images[0], images[1])
        summary[f"{which}_file"] = rel
        summary[f"{which}_images_dir"] = Path("images") / folder
        summary[f"n_{which}_samples"] = voxels.shape[0]
        summary[f"n_{which}_images"] = len(set(keys))
        summary[f"nonfinite_{which}_values"] = int((~np.isfinite(voxels)).sum())
    if set_name and "test" in sets:
        summary["test_set_name"] = set_name
    with open(root / "images" / "names.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["stimulus_id", "name", "original_label"])
        for key, (ident, name) in sorted(ids.items(), key=lambda kv: kv[1][0]):
            writer.writerow([f"{ident:f}", name, key])
    return summary


def _write_bdata(
    path: Path,
    voxels: np.ndarray,
    stim_ids: np.ndarray,
    runs: np.ndarray,
    sessions: np.ndarray | None,
    volume: Volume,
    names: dict[float, str],
    set_name: str | None,
) -> None:
    bd = BData()
    bd.add(voxels, "VoxelData")
    # The lab's label block: the reference code reads its column 1 as the stimulus id.
    bd.add(np.stack([np.arange(1, len(stim_ids) + 1, dtype=np.float64), stim_ids], 1), "Label")
    bd.add(stim_ids, "stimulus_id")
    bd.add(runs, "Run")
    bd.add(np.ones(len(stim_ids)) if sessions is None else sessions, "Session")
    for key, mask in volume.rois.items():
        bd.add_metadata(key, mask.astype(np.float64), f"1 = {key}", where="VoxelData")
    if volume.xyz is not None:
        for axis, column in zip("xyz", volume.xyz.T, strict=True):
            bd.add_metadata(f"voxel_{axis}", column, f"voxel {axis} coordinate", where="VoxelData")
    bd.add_vmap("stimulus_id", {i: names[i] for i in np.unique(stim_ids)})
    if set_name:
        bd.header["set_name"] = set_name  # read back by load_test_set as the set's name
    bd.save(path)


def _write_image_files(
    keys: list[str],
    ids: dict[str, tuple[float, str]],
    folder: Path,
    image_of: dict[str, np.ndarray] | None,
    images_dir: Path | None,
) -> None:
    """Write (from the arrays) or copy (from images_dir) one image per distinct key."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    distinct = sorted(set(keys), key=lambda k: ids[k][0])
    if image_of is not None:
        for key in distinct:
            Image.fromarray(image_of[key]).save(folder / f"{ids[key][1]}.png")
        return
    if images_dir is None:
        raise DataError("No images: give an images array (--images-key) or --images-dir.")
    sources = find_image_files(images_dir, distinct)
    for key, src in zip(distinct, sources, strict=True):
        shutil.copyfile(src, folder / f"{ids[key][1]}{src.suffix}")


def _assign_ids(keys: list[str]) -> dict[str, tuple[float, str]]:
    """Map each distinct label to (stimulus id, image name)."""
    distinct = sorted(set(keys), key=lambda k: (len(k), k))
    if all(_LAB_NAME.fullmatch(k) for k in distinct):
        return {k: (name_to_id(k), k) for k in distinct}
    if len(distinct) > 999_999:
        raise DataError(f"{len(distinct)} distinct images: at most 999,999 can be imported.")
    return {k: ((i + 1) / 1e6, id_to_name((i + 1) / 1e6)) for i, k in enumerate(distinct)}
