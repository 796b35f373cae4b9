"""Import GLM betas in NIfTI: a 4-D file (or a folder of 3-D files), a mask, ROIs and a table.

A folder such as::

    betas.nii.gz          4-D, one volume per stimulus presentation (or beta_0001.nii ...)
    mask.nii.gz           the voxels to keep (non-zero)
    roi_V1.nii.gz ...     optional ROI masks, same grid -> BData keys ROI_V1 ...
    volumes.tsv           one row per volume: stimulus, split (train/test), run, session
    stimuli/              the stimulus images named in the table

becomes the same BData files and image folders as
:func:`e2e_recon.data.importing.importers.import_arrays` writes. Voxel coordinates are
taken from the affine (world millimetres of each voxel centre) and stored as
``voxel_x``/``voxel_y``/``voxel_z`` metadata on the voxel columns, with ROI keys holding
1/0 per voxel, as in the lab's files; without ROI files every voxel of the mask is
``ROI_VC``.
"""

from __future__ import annotations

import csv
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from e2e_recon.data.importing.import_preview import preview_summary
from e2e_recon.data.importing.import_writer import Volume, write_import
from e2e_recon.data.importing.pairing import Pairing, usable_voxels
from e2e_recon.data.importing.source_checks import COPY_BYTES, Declared, check_memory, check_stored
from e2e_recon.errors import DataError

__all__ = ["import_nifti", "is_nifti_source", "read_table"]

_NII = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)
# Table columns and the names they may go by (compared in lower case).
_COLUMNS = {
    "stimulus": ("stimulus", "stimulus_name", "stim_file", "image", "file", "filename"),
    "split": ("split", "set", "train_test", "partition"),
    "run": ("run", "runs"),
    "session": ("session", "ses", "sessions"),
    "volume": ("volume", "beta", "beta_file"),
}


def is_nifti_source(source: str | Path) -> bool:
    """True for a ``.nii``/``.nii.gz`` file or a folder holding NIfTI files."""
    path = Path(source)
    if path.is_dir():
        return any(_NII.search(p.name) for p in path.iterdir())
    return bool(_NII.search(path.name))


def _stem(path: Path) -> str:
    return _NII.sub("", path.name)


def _load(path: Path) -> Any:
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as err:  # nibabel raises several types for a damaged file
        raise DataError(
            f"Cannot read the NIfTI file {path} ({type(err).__name__}: {err})."
        ) from err


def _check_affine(path: Path, img: Any) -> None:
    if not np.isfinite(np.asarray(img.affine, dtype=np.float64)).all():
        raise DataError(
            f"{path}: the affine (voxel to world transform) in its header is not finite "
            "(NaN or inf); fix the header's sform/qform (e.g. copy the mask's)."
        )


def _read_data(path: Path, img: Any, dtype: Any = None, per_item: int = COPY_BYTES) -> np.ndarray:
    """The volume data of ``img`` (scaled, as ``dtype`` if given), after checking its size.

    The declared size must fit in the file (``.nii``) or in what its compressed bytes can
    expand to (``.nii.gz``), and in the available memory (``per_item`` working bytes per
    voxel on top of the data); a truncated or damaged file is one DataError, not
    gzip's EOFError (which the command line would print as a bare "Aborted.").
    """
    proxy = img.dataobj
    declared = Declared(str(path), tuple(img.shape), np.dtype(img.get_data_dtype()).itemsize)
    size = path.stat().st_size
    compressed = path.name.lower().endswith(".gz")
    stored = size if compressed else size - int(getattr(proxy, "offset", 0))
    check_stored(declared, stored, compressed)
    check_memory([declared], per_item + (8 if dtype is None else np.dtype(dtype).itemsize))
    try:
        return np.asarray(proxy) if dtype is None else np.asarray(proxy, dtype=dtype)
    except (EOFError, OSError, ValueError, zlib.error, MemoryError) as err:
        raise DataError(
            f"{path}: cannot read its volume data ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'}); the file is truncated "
            "or damaged (write or copy it again)."
        ) from err


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


# --------------------------------------------------------------------------------------------
# Finding the parts
# --------------------------------------------------------------------------------------------


def _find_parts(
    source: Path, mask: Path | None, table: Path | None
) -> tuple[list[Path], Path, dict[str, Path], Path]:
    """(beta files, mask, {ROI name: file}, table) of a source folder or 4-D file."""
    folder = source if source.is_dir() else source.parent
    niftis = sorted((p for p in folder.iterdir() if _NII.search(p.name)), key=_natural_key)
    rois = {_stem(p)[4:]: p for p in niftis if _stem(p).lower().startswith("roi_")}
    if mask is None:
        found = [p for p in niftis if _stem(p).lower() in ("mask", "brain_mask")]
        if not found:
            raise DataError(f"No mask.nii[.gz] in {folder}; give the brain mask with --mask.")
        mask = found[0]
    if source.is_dir():
        betas = [p for p in niftis if p != mask and p not in rois.values()]
    else:
        betas = [source]
    if not betas:
        raise DataError(f"No beta volumes in {folder} (NIfTI files other than the mask and roi_*).")
    if table is None:
        tables = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".tsv", ".csv"))
        if len(tables) != 1:
            raise DataError(
                f"{folder} holds {len(tables)} .tsv/.csv tables; give the one with a row per "
                "volume (stimulus, split, run, session) with --table."
            )
        table = tables[0]
    return betas, mask, rois, table


def read_table(path: Path) -> dict[str, list[str]]:
    """Columns of a TSV/CSV table by canonical name (stimulus, split, run, session, volume)."""
    if not path.is_file():
        raise DataError(f"Table not found: {path}.")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}: line {line} is not UTF-8 text (byte {raw[err.start]:#04x}); save the "
            "table as UTF-8 (in a spreadsheet: 'CSV UTF-8' or 'Unicode text')."
        ) from None
    dialect = (
        "excel-tab" if path.suffix.lower() == ".tsv" or "\t" in text.split("\n")[0] else "excel"
    )
    rows = list(csv.DictReader(text.splitlines(), dialect=dialect))
    if not rows:
        raise DataError(f"{path}: the table has no rows; it needs one row per volume.")
    header = {name.strip().lower(): name for name in rows[0]}
    out: dict[str, list[str]] = {}
    for column, aliases in _COLUMNS.items():
        name = next((header[a] for a in aliases if a in header), None)
        if name is not None:
            out[column] = [(row[name] or "").strip() for row in rows]
    if "stimulus" not in out:
        raise DataError(
            f"{path}: no stimulus column (looked for {', '.join(_COLUMNS['stimulus'])}); "
            f"the table has {', '.join(header.values())}."
        )
    return out


# --------------------------------------------------------------------------------------------
# Reading volumes
# --------------------------------------------------------------------------------------------


def _mask_and_coordinates(mask_path: Path) -> tuple[np.ndarray, np.ndarray, Any]:
    """Boolean mask, (n_voxels, 3) world coordinates of its voxels, and the image."""
    img = _load(mask_path)
    _check_affine(mask_path, img)
    # Per voxel: the data, a bool, and three float64 coordinates if it is in the mask.
    mask = _read_data(mask_path, img, per_item=25).squeeze() != 0
    if mask.ndim != 3 or not mask.any():
        raise DataError(f"{mask_path}: a mask must be a 3-D volume with non-zero voxels.")
    ijk = np.stack(np.nonzero(mask), axis=1).astype(np.float64)  # C order, as the voxels
    xyz = ijk @ img.affine[:3, :3].T + img.affine[:3, 3]
    return mask, xyz, img


def _same_grid(path: Path, img: Any, mask_img: Any, shape: tuple[int, ...]) -> None:
    _check_affine(path, img)
    if tuple(img.shape[:3]) != shape or not np.allclose(img.affine, mask_img.affine, atol=1e-3):
        raise DataError(
            f"{path} is on another grid than the mask (shape {tuple(img.shape[:3])} vs {shape}, "
            "or another affine); resample it to the mask's space first."
        )


def _check_grids(paths: list[Path], mask_path: Path) -> None:
    """Every volume on the mask's grid, from the headers alone (nothing is read yet)."""
    mask_img = _load(mask_path)
    _check_affine(mask_path, mask_img)
    for path in paths:
        _same_grid(path, _load(path), mask_img, tuple(mask_img.shape[:3]))


def _read_betas(betas: list[Path], mask: np.ndarray, mask_img: Any) -> np.ndarray:
    """(n_volumes, n_voxels) float64 of every beta volume inside the mask."""
    rows = []
    for path in betas:
        img = _load(path)
        _same_grid(path, img, mask_img, mask.shape)
        data = _read_data(path, img, np.float64)
        data = data[..., None] if data.ndim == 3 else data.reshape(*data.shape[:3], -1)
        rows.append(data[mask].T)  # (volumes, voxels)
    return np.concatenate(rows, axis=0)


def _rois(rois: dict[str, Path], mask: np.ndarray, mask_img: Any) -> dict[str, np.ndarray]:
    out = {}
    for name, path in rois.items():
        img = _load(path)
        _same_grid(path, img, mask_img, mask.shape)
        out[f"ROI_{name}"] = _read_data(path, img, per_item=1).squeeze()[mask] != 0
    return out or {"ROI_VC": np.ones(int(mask.sum()), dtype=bool)}


def _numbers(values: list[str] | None, n: int, what: str, table: Path) -> np.ndarray:
    if values is None:
        return np.ones(n)
    try:
        return np.array([float(v) for v in values])
    except ValueError:
        raise DataError(f"{table}: the {what} column must hold numbers.") from None


def _test_mask(values: list[str] | None, table: Path) -> np.ndarray | None:
    if values is None:
        return None
    words = [v.lower() for v in values]
    unknown = sorted(set(words) - {"train", "training", "test"})
    if unknown:
        raise DataError(f"{table}: split values must be 'train' or 'test', got {unknown[:5]}.")
    return np.array([w == "test" for w in words])


def _order_betas(betas: list[Path], volumes: list[str] | None, table: Path) -> list[Path]:
    """3-D beta files in the table's order when it names them, else in name order."""
    if volumes is None or len(betas) == 1:
        return betas
    by_name = {p.name: p for p in betas} | {_stem(p): p for p in betas}
    missing = [v for v in volumes if v not in by_name]
    if missing:
        raise DataError(f"{table}: volumes {missing[:3]} are not beta files of the folder.")
    return [by_name[v] for v in volumes]


# --------------------------------------------------------------------------------------------
# The import
# --------------------------------------------------------------------------------------------


def import_nifti(
    source: str | Path,
    out_dir: str | Path,
    subject: str = "sub-01",
    mask: str | Path | None = None,
    table: str | Path | None = None,
    images_dir: str | Path | None = None,
    set_name: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Turn NIfTI betas, a mask, ROI masks and a volume table into BData files and images.

    Parameters
    ----------
    source : folder of NIfTI files (a 4-D betas file or 3-D betas, ``mask``, ``roi_<NAME>``)
        or the 4-D betas file itself.
    out_dir : output folder (gets ``fmri/`` and ``images/``).
    subject : subject name used in the file names.
    mask, table : the mask and the TSV/CSV table, if not found in the folder.
    images_dir : folder of the stimulus files named in the table; default ``stimuli/``
        beside the table, else the table's folder.
    set_name : name of the test set; default the lab's natural-image test set.
    overwrite : replace existing ``fmri/`` and ``images/`` in ``out_dir``.

    Returns
    -------
    dict
        Paths written and counts, as :func:`e2e_recon.data.importing.importers.import_arrays`.
    """
    src = Path(source)
    if not src.exists():
        raise DataError(f"Import source not found: {src}.")
    betas, mask_path, roi_files, table_path = _find_parts(
        src, Path(mask) if mask else None, Path(table) if table else None
    )
    columns = read_table(table_path)
    n = len(columns["stimulus"])
    betas = _order_betas(betas, columns.get("volume"), table_path)
    _check_grids([*betas, *roi_files.values()], mask_path)  # headers only, before any data
    mask_arr, xyz, mask_img = _mask_and_coordinates(mask_path)
    voxels = usable_voxels(_read_betas(betas, mask_arr, mask_img), "beta")
    if voxels.shape[0] != n:
        raise DataError(
            f"{len(betas)} beta file(s) hold {voxels.shape[0]} volumes but {table_path} has "
            f"{n} rows; the table needs one row per volume, in the volumes' order."
        )
    keys = [Path(s).stem for s in columns["stimulus"]]
    if any(not k for k in keys):
        row = keys.index("") + 2  # 1-based, after the header line
        raise DataError(
            f"{table_path}: line {row} has an empty stimulus; every row needs the stimulus "
            "file name of its volume."
        )
    test = _test_mask(columns.get("split"), table_path)
    test = np.zeros(n, dtype=bool) if test is None else test
    runs = _numbers(columns.get("run"), n, "run", table_path)
    sessions = _numbers(columns.get("session"), n, "session", table_path)
    sets, per_set_sessions = {}, {}
    for which, rows in (("training", ~test), ("test", test)):
        if rows.any():
            sets[which] = (
                voxels[rows],
                [k for k, r in zip(keys, rows, strict=True) if r],
                runs[rows],
            )
            per_set_sessions[which] = sessions[rows]
    if "training" not in sets:
        raise DataError(f"{table_path}: every volume is marked test; there is nothing to train on.")
    volume = Volume(_rois(roi_files, mask_arr, mask_img), xyz, per_set_sessions)
    if images_dir is None:
        stimuli = table_path.parent / "stimuli"
        images_dir = stimuli if stimuli.is_dir() else table_path.parent
    pairing = Pairing(sets, None, per_sample=False, notes=[])
    summary = write_import(out_dir, pairing, volume, subject, images_dir, overwrite, set_name)
    summary.update(preview_summary(out_dir, summary))
    summary.update(
        betas_from=", ".join(p.name for p in betas[:3]) + (" ..." if len(betas) > 3 else ""),
        mask_from=mask_path.name,
        rois_from=", ".join(p.name for p in roi_files.values()) or "none (ROI_VC = the mask)",
        table_from=table_path.name,
    )
    return summary
