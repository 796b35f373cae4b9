"""Data-pipeline benchmark: paper-sized BData load + ROI + z-score, and crop throughput.

Prints one JSON object. Goals (issue 3): load/select/z-score a 6,000 x 15,000
float64 training file in < 5 s with peak memory < 3x the array size; with a warm
image cache, > 2,000 random 227-px Caffe-space crops per second.

Wall-clock figures depend on what else runs on the machine (the 1-minute load
average is printed); the ``*_cpu_s`` figures count this process's CPU time only.

Usage: python benchmarks/data_pipeline.py [--samples 6000] [--voxels 15000] [--images 1200]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from e2e_recon.data.bdata import BData
from e2e_recon.data.dataset import CropSampler, load_training_set
from e2e_recon.data.labels import id_to_name
from e2e_recon.device import cpu_info


def write_subject(root: Path, n_samples: int, n_voxels: int, n_images: int) -> Path:
    """A training file with lab-style metadata, and tiny placeholder images (resized later)."""
    rng = np.random.default_rng(0)
    ids = np.array([float(f"1518878.{i + 1:06d}") for i in range(n_images)])
    per_sample = np.resize(ids, n_samples)
    bd = BData()
    bd.add(rng.standard_normal((n_samples, n_voxels)), "VoxelData")
    bd.add(np.stack([np.arange(n_samples, dtype=float), per_sample], 1), "Label")
    bd.add(per_sample, "stimulus_id")
    bd.add(np.ones(n_samples), "Run")
    vc = (np.arange(n_voxels) % 10 != 0).astype(float)  # 90% of the voxels in ROI_VC
    bd.add_metadata("ROI_VC", vc, "1 = VC", where="VoxelData")
    bd.save(root / "train.h5")
    del bd
    (root / "images").mkdir()
    for stim in ids:
        pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"{id_to_name(stim)}.JPEG")
    return root / "train.h5"


def bench_load(path: Path, n_samples: int, n_voxels: int) -> dict[str, float]:
    from e2e_recon.data import dataset as ds

    tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    bdata = BData(path)
    raw, _ = ds._read_roi(bdata, "ROI_VC = 1")
    del bdata
    voxels = ds._rows_as_float32(raw, np.arange(raw.shape[0]))
    mean, std = voxels.mean(0, dtype=np.float64), voxels.std(0, dtype=np.float64)
    voxels -= mean.astype(np.float32)
    voxels /= std.astype(np.float32)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    array_bytes = n_samples * n_voxels * 8
    return {
        "load_select_zscore_s": round(seconds, 3),
        "load_select_zscore_cpu_s": round(cpu_seconds, 3),
        "peak_traced_bytes": int(peak),
        "array_bytes": array_bytes,
        "peak_over_array": round(peak / array_bytes, 2),
        "selected_voxels": int(voxels.shape[1]),
    }


def bench_crops(path: Path, images: Path, batch: int, steps: int) -> dict[str, float]:
    t0 = time.perf_counter()
    ts = load_training_set(path, images, image_size_px=248, cache_dir=images.parent / "cache")
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    ts = load_training_set(path, images, image_size_px=248, cache_dir=images.parent / "cache")
    warm = time.perf_counter() - t0
    sampler = CropSampler(ts, crop_px=227)
    g = torch.Generator().manual_seed(0)
    int(np.asarray(ts.images).sum(dtype=np.uint64))  # map every cache page in, as a long run does
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        sampler.sample(batch, g)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    return {
        "crops_per_cpu_s": round(batch * steps / cpu_seconds, 1),
        "cache_build_s": round(cold, 2),
        "load_training_set_warm_s": round(warm, 2),
        "crop_batch": batch,
        "crops_per_s": round(batch * steps / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=6000)
    parser.add_argument("--voxels", type=int, default=15000)
    parser.add_argument("--images", type=int, default=1200)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = write_subject(root, args.samples, args.voxels, args.images)
        result = {"benchmark": "data_pipeline", **cpu_info()}
        result.update(bench_load(path, args.samples, args.voxels))
        result.update(bench_crops(path, root / "images", args.batch, args.steps))
    result["load_average_1min"] = round(os.getloadavg()[0], 2)  # other work on the machine
    result["max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["goals"] = {
        "load_select_zscore_s": "< 5",
        "peak_over_array": "< 3",
        "crops_per_s": "> 2000",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
