"""A tiny subject for the training tests: voxels that encode their images linearly.

Images are smooth random colour blobs; each voxel is a fixed random mix of the image's
8 x 8 thumbnail plus noise, so a generator can learn the mapping in a few dozen steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from e2e_recon.config import Config, load_config
from e2e_recon.data.bdata import BData
from e2e_recon.data.labels import id_to_name

IMAGE_PX = 64


def _images(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 64, 64, 3) uint8 RGB: a few large soft colour blobs each."""
    yy, xx = np.mgrid[0:IMAGE_PX, 0:IMAGE_PX] / IMAGE_PX
    out = np.empty((n, IMAGE_PX, IMAGE_PX, 3), dtype=np.float64)
    for i in range(n):
        img = np.full((IMAGE_PX, IMAGE_PX, 3), 128.0)
        for _ in range(3):
            cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.15, 0.35)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
            img += blob[..., None] * rng.uniform(-110, 110, size=3)
        out[i] = img
    return np.clip(out, 0, 255).astype(np.uint8)


def _write_bdata(path: Path, voxels: np.ndarray, ids: np.ndarray) -> None:
    n, v = voxels.shape
    bd = BData()
    bd.add(voxels, "VoxelData")
    bd.add(np.stack([np.arange(n, dtype=float), ids], axis=1), "Label")
    bd.add(ids, "stimulus_id")
    bd.add(np.arange(n, dtype=float) // 8, "Run")
    bd.add(np.ones(n), "Session")
    bd.add_metadata("ROI_VC", np.ones(v), "1 = VC", where="VoxelData")
    for axis in "xyz":
        bd.add_metadata(f"voxel_{axis}", np.arange(v, dtype=float), axis, where="VoxelData")
    bd.save(path)


def make_tiny_subject(
    root: Path, n_train: int = 24, reps: int = 2, n_test: int = 8, test_reps: int = 4,
    n_voxels: int = 48, noise: float = 0.5, seed: int = 0,
) -> dict[str, Path]:  # fmt: skip
    """Write BData files and images under ``root``; return their paths."""
    rng = np.random.default_rng(seed)
    images = _images(n_train + n_test, rng)
    ids = np.array([float(f"1518878.{i + 1:06d}") for i in range(n_train + n_test)])
    thumbs = images.reshape(-1, 8, 8, 8, 8, 3).mean(axis=(2, 4)).reshape(len(images), -1) / 64
    mixing = rng.normal(size=(thumbs.shape[1], n_voxels)) / np.sqrt(thumbs.shape[1])
    signal = thumbs @ mixing  # (n_images, V)
    signal = (signal - signal.mean(axis=0)) / signal.std(axis=0)  # unit variance across images
    folder = root / "images"  # training and test images side by side
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(len(images)):
        Image.fromarray(images[i]).save(folder / f"{id_to_name(ids[i])}.png")
    fmri = root / "fmri"
    fmri.mkdir(parents=True, exist_ok=True)
    train_rows = np.tile(np.arange(n_train), reps)
    test_rows = np.repeat(np.arange(n_train, n_train + n_test), test_reps)
    paths = {}
    for key, rows in (("train", train_rows), ("test", test_rows)):
        voxels = signal[rows] + noise * rng.normal(size=(rows.size, n_voxels))
        session = (
            "perceptionNaturalImageTraining" if key == "train" else "perceptionNaturalImageTest"
        )
        path = fmri / f"sub-01_{session}_original_VC.h5"
        _write_bdata(path, voxels, ids[rows])
        paths[key] = path
    paths["images"] = root / "images"
    return paths


def tiny_config(paths: dict[str, Path], *extra: str) -> Config:
    """The paper preset shrunk to seconds on a CPU: same code path, tiny networks."""
    overrides = [
        f"data.train_fmri='{paths['train']}'",
        f"data.images_dir='{paths['images']}'",
        "data.image_size_px=64",
        "data.crop_px=63",
        "model.fc_width=64",
        "model.output_size_px=64",
        "model.base_channels=16",
        "model.comparator=random-caffenet",
        "model.feature_layers=[conv1]",
        "train.batch_size=8",
        "train.iters=4",
        "train.lr_halve_at_iters=[3]",
        "train.snapshot_every_iters=2",
        "train.log_every_iters=1",
        "train.grid_every_iters=0",
        "train.device=cpu",
        "train.precision=fp32",
        "train.channels_last=false",
        *extra,
    ]
    return load_config("paper", overrides)
