"""A tiny multi-subject experiment: subjects who saw the same images, with their own voxels.

``sub-01`` is :func:`tiny_train_subject.make_tiny_subject`; every further subject is
derived from it by a fixed random linear mixing of sub-01's voxels into its own voxel
count plus fresh noise, written beside it (``fmri/sub-02_...``) and sharing its image
folder, as the lab's subjects share one stimulus set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tiny_train_subject import _write_bdata, make_tiny_subject

from e2e_recon.config import Config, load_config
from e2e_recon.data.bdata import BData


def derive_subject(source: Path, name: str, n_voxels: int, seed: int, noise: float) -> Path:
    """Write ``name``'s copy of the BData file ``source`` with remixed voxels; return it."""
    rng = np.random.default_rng(seed)
    bd = BData(source)
    voxels = np.asarray(bd.get("VoxelData"), dtype=np.float64)  # (N, V)
    ids = np.asarray(bd.get("stimulus_id"), dtype=np.float64).ravel()
    mixing = rng.normal(size=(voxels.shape[1], n_voxels)) / np.sqrt(voxels.shape[1])
    mixed = voxels @ mixing + noise * rng.normal(size=(len(voxels), n_voxels))
    path = source.with_name(source.name.replace("sub-01", name, 1))
    _write_bdata(path, mixed, ids)
    return path


def make_multi_subject(
    root: Path, voxels: tuple[int, ...] = (48, 40, 56), noise: float = 0.3, **kwargs: object
) -> dict[str, object]:
    """Subjects sub-01, sub-02, ... with ``voxels[i]`` voxels each; their files and images.

    Returns ``{"train": [paths], "test": [paths], "images": folder}``, subjects in order.
    """
    first = make_tiny_subject(root, n_voxels=voxels[0], **kwargs)  # type: ignore[arg-type]
    train, test = [first["train"]], [first["test"]]
    for index, count in enumerate(voxels[1:], start=2):
        name = f"sub-{index:02d}"
        train.append(derive_subject(first["train"], name, count, 100 + index, noise))
        test.append(derive_subject(first["test"], name, count, 100 + index, noise))
    return {"train": train, "test": test, "images": first["images"]}


#: What shrinks both presets to seconds on a CPU: small images, a random CaffeNet comparator,
#: batches of 6 for 6 iterations, a snapshot and a validation every few, strict fp32.
SECONDS_ON_A_CPU = (
    "data.image_size_px=36",
    "data.crop_px=32",
    "data.val_fraction=0.25",
    "model.comparator=random-caffenet",
    "model.feature_layers=[conv1]",
    "train.batch_size=6",
    "train.iters=6",
    "train.snapshot_every_iters=3",
    "train.log_every_iters=1",
    "train.grid_every_iters=0",
    "train.val_every_iters=2",
    "train.device=cpu",
    "train.precision=fp32",
    "train.channels_last=false",
)


def shared_config(paths: dict[str, object], *extra: str) -> Config:
    """The shared preset shrunk to seconds on a CPU (tiny networks, a few iterations)."""
    files = ", ".join(f"'{p}'" for p in paths["train"])  # type: ignore[attr-defined]
    overrides = [
        f"data.train_fmri_subjects=[{files}]",
        f"data.images_dir='{paths['images']}'",
        *SECONDS_ON_A_CPU,
        "model.fc_width=64",
        "model.output_size_px=32",
        "model.base_channels=16",
        *extra,
    ]
    return load_config("shared", overrides)


def adapt_config(train_fmri: Path, images: Path, source: Path | str, *extra: str) -> Config:
    """The adapt preset shrunk to seconds on a CPU (the architecture comes from ``source``)."""
    overrides = [
        f"data.train_fmri='{train_fmri}'",
        f"data.images_dir='{images}'",
        f"train.adapt_from='{source}'",
        *SECONDS_ON_A_CPU,
        "train.adapt_freeze_iters=3",
        *extra,
    ]
    return load_config("adapt", overrides)
