"""Tiny lab-style subjects (BData files + stimulus images) for the data-layer tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from e2e_recon.data.bdata import BData
from e2e_recon.data.labels import id_to_name

SYNSETS = (1518878, 2084071, 3000001, 4254680, 7753592, 1440764)


def stimulus_ids(n_images: int) -> np.ndarray:
    """Distinct stimulus ids, float64, e.g. 1518878.000001."""
    return np.array([float(f"{SYNSETS[i % 6]}.{i + 1:06d}") for i in range(n_images)])


def write_images(folder: Path, ids: np.ndarray, size: int = 40, seed: int = 0) -> list[Path]:
    """One JPEG per id (every third one greyscale, one PNG), named by stimulus."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for k, stim in enumerate(ids):
        name = id_to_name(float(stim))
        if k % 3 == 2:
            img = Image.fromarray(rng.integers(0, 256, (size, size + 7), dtype=np.uint8), "L")
        else:
            img = Image.fromarray(rng.integers(0, 256, (size + 5, size, 3), dtype=np.uint8))
        path = folder / f"{name}.{'png' if k == 1 else 'JPEG'}"
        img.save(path)
        paths.append(path)
    return paths


def write_fmri(
    path: Path,
    ids_per_sample: np.ndarray,
    n_voxels: int = 10,
    seed: int = 0,
    named_key: bool = True,
) -> BData:
    """A lab-style BData file: VoxelData, ROI_VC/ROI_V1, 2 Label columns, Run, Session."""
    rng = np.random.default_rng(seed)
    n = ids_per_sample.size
    bd = BData()
    bd.add(rng.normal(3.0, 2.0, size=(n, n_voxels)), "VoxelData")
    bd.add(np.stack([np.arange(n, dtype=float), ids_per_sample], axis=1), "Label")
    if named_key:
        bd.add(ids_per_sample, "stimulus_id")
    bd.add(np.arange(n, dtype=float) // 4, "Run")
    bd.add(np.ones(n), "Session")
    idx = np.arange(n_voxels)
    bd.add_metadata("ROI_VC", (idx < n_voxels - 1).astype(float), "1 = VC", where="VoxelData")
    bd.add_metadata("ROI_V1", (idx < 3).astype(float), "1 = V1", where="VoxelData")
    for axis, values in zip("xyz", (idx, idx * 2, idx * 3), strict=True):
        bd.add_metadata(f"voxel_{axis}", values.astype(float), axis, where="VoxelData")
    bd.save(path)
    return bd


def make_subject(
    root: Path, n_train: int = 6, reps: int = 3, n_test: int = 3, test_reps: int = 4
) -> dict[str, Path]:
    """Training and test files plus image folders under ``root``."""
    train_ids = stimulus_ids(n_train)
    test_ids = stimulus_ids(n_train + n_test)[n_train:]
    write_images(root / "images" / "training", train_ids)
    write_images(root / "images" / "test", test_ids, seed=1)
    fmri = root / "fmri"
    fmri.mkdir(parents=True, exist_ok=True)
    train = fmri / "sub-01_perceptionNaturalImageTraining_original_VC.h5"
    test = fmri / "sub-01_perceptionNaturalImageTest_original_VC.h5"
    write_fmri(train, np.tile(train_ids, reps))
    write_fmri(test, np.repeat(test_ids, test_reps)[::-1].copy(), seed=1)
    return {
        "train": train,
        "test": test,
        "train_images": root / "images" / "training",
        "test_images": root / "images" / "test",
    }
