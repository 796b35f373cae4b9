"""Files of the pRF simulator family: trial schedule, BData writer, stimulus names.

The BData files are written with h5py directly (not with ``e2e_recon.data.bdata``), so
that the project's reader meets a layout it did not write: ``dataset`` samples x [Run,
Session, Label (2 columns: trial in run, stimulus id), voxels], ``metadata``
key/description/value with keys as fixed-length byte strings, no ``stimulus_id`` key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from e2e_recon.sim.prf.brain import AREAS, Brain

__all__ = ["CREATOR", "FILE_PART", "schedule", "stimulus_name", "write_bdata"]

CREATOR = b"e2e_recon.sim.prf"
FILE_PART = {"training": "perceptionNaturalImageTraining", "test": "perceptionNaturalImageTest"}


def schedule(n_images: int, presentations: int, rng: np.random.Generator) -> dict:
    """Image order (each presentation a fresh permutation), runs of at most 50 trials."""
    order = np.concatenate([rng.permutation(n_images) for _ in range(presentations)])
    run = np.arange(order.size) // 50 + 1
    trial_in_run = np.arange(order.size) % 50 + 1
    session = np.repeat(np.arange(presentations) + 1, n_images)
    return {"order": order, "run": run, "trial": trial_in_run, "session": session}


def write_bdata(path: Path, voxels: np.ndarray, ids: np.ndarray, sched: dict, brain: Brain) -> None:
    """A BData file written with h5py directly: Run, Session, Label (trial, id), voxels."""
    n, v = voxels.shape
    dataset = np.column_stack([sched["run"], sched["session"], sched["trial"], ids, voxels])
    n_cols = dataset.shape[1]

    def row(first: int, count: int, values: Any = 1.0) -> np.ndarray:
        out = np.full(n_cols, np.nan)
        out[first : first + count] = values
        return out

    meta = [
        ("Run", "1 = run number", row(0, 1)),
        ("Session", "1 = session number", row(1, 1)),
        ("Label", "1 = label (trial in run, stimulus id)", row(2, 2)),
        ("VoxelData", "1 = voxel data", row(4, v)),
    ]
    for i, (name, *_rest) in enumerate(AREAS):
        meta.append((f"ROI_{name}", f"1 = ROI {name}", row(4, v, (brain.area == i) * 1.0)))
    meta.append(("ROI_VC", "1 = visual cortex", row(4, v, (brain.area >= 0) * 1.0)))
    for axis in range(3):  # made-up voxel coordinates (mm), distinct per voxel
        coords = [np.arange(v) % 20, (np.arange(v) // 20) % 20, np.arange(v) // 400][axis]
        meta.append((f"voxel_{'xyz'[axis]}", f"voxel {'xyz'[axis]} (mm)", row(4, v, 3.0 * coords)))
    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w") as h5:
        h5.create_dataset("dataset", data=dataset.astype(np.float64))
        group = h5.create_group("metadata")
        group.create_dataset("key", data=np.array([m[0] for m in meta], dtype="S"))
        group.create_dataset("description", data=np.array([m[1] for m in meta], dtype="S"))
        group.create_dataset("value", data=np.stack([m[2] for m in meta]))
        h5.create_group("header").create_dataset("creator", data=CREATOR)
    os.replace(tmp, path)
    assert n == ids.size


def stimulus_name(stim_id: float) -> str:
    """The lab's id-to-name rule: ``9200006.000017`` -> ``n09200006_17``."""
    synset, image = ("%f" % stim_id).split(".")  # noqa: UP031 (the '%f' rounding is the rule)
    return f"n{int(synset):08d}_{int(image)}"
