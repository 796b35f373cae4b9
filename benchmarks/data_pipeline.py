"""Data-pipeline benchmark: paper-sized BData load + ROI + z-score, and crop throughput.

Prints one JSON object. Goals: load/select/z-score a 6,000 x 15,000 float64
training file in < 5 s with peak memory < 3x the array size; with a warm image
cache, random 227-px Caffe-space crops (channels-last, as training uses them) at
2x the rate of the previous sampler on 2 CPU cores (both timed here, interleaved),
and > 50,000 per second with ``--device cuda``.

Wall-clock figures depend on what else runs on the machine (the 1-minute load
average is printed); the ``*_cpu_s`` figures count this process's CPU time only.

Usage: python benchmarks/data_pipeline.py [--samples 6000] [--voxels 15000] [--images 1200]
       [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from e2e_recon.data.bdata import BData
from e2e_recon.data.dataset import CropSampler, load_training_set
from e2e_recon.data.images import CAFFE_MEAN_BGR
from e2e_recon.data.labels import id_to_name
from e2e_recon.device import cpu_info, resolve_device


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


def previous_crops(
    images: torch.Tensor,
    rows: torch.Tensor,
    tops: torch.Tensor,
    lefts: torch.Tensor,
    c: int,
    layout: bool,
) -> torch.Tensor:
    """The sampler before batches were cut on the device, kept as the reference: one slice
    copy per crop, a channels-first float32 batch, then (``layout``) the channels-last copy
    the training loop made of it."""
    mean = torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float32).view(1, 3, 1, 1)
    coords = zip(rows.tolist(), tops.tolist(), lefts.tolist(), strict=True)
    picked = torch.stack([images[i, y : y + c, x : x + c] for i, y, x in coords])  # (B, c, c, 3)
    out = torch.empty((picked.shape[0], 3, c, c), dtype=torch.float32)  # (B, 3, c, c)
    torch.sub(picked.permute(0, 3, 1, 2), mean, out=out)
    return out.contiguous(memory_format=torch.channels_last) if layout else out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_crops(
    path: Path, images: Path, batch: int, steps: int, device: torch.device, rounds: int
) -> dict[str, object]:
    """Crops per second of the sampler on ``device`` and, interleaved, of the previous one."""
    t0 = time.perf_counter()
    ts = load_training_set(path, images, image_size_px=248, cache_dir=images.parent / "cache")
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    ts = load_training_set(path, images, image_size_px=248, cache_dir=images.parent / "cache")
    warm = time.perf_counter() - t0
    int(np.asarray(ts.images).sum(dtype=np.uint64))  # map every cache page in, as a long run does
    t0 = time.perf_counter()
    sampler = CropSampler(ts, crop_px=227, device=device)
    _sync(device)
    upload = time.perf_counter() - t0
    host_images = torch.from_numpy(ts.images)
    g = torch.Generator().manual_seed(0)
    sampler.sample(batch, g)  # warm-up: kernels, allocator
    new_s, new_cpu_s = [], []
    old_s: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):  # interleaved: load from other work slows both alike
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            sampler.sample(batch, g)
        _sync(device)
        new_s.append(time.perf_counter() - t0)
        new_cpu_s.append(time.process_time() - c0)
        for layout in (True, False):
            t0 = time.perf_counter()
            for _ in range(steps):
                rows = torch.randint(len(sampler), (batch,), generator=g)
                offsets = torch.randint(sampler.max_offset + 1, (2, batch), generator=g)
                image = sampler.image_index[rows]
                crops = previous_crops(host_images, image, offsets[0], offsets[1], 227, layout)
                crops.to(device)
            _sync(device)
            old_s[layout].append(time.perf_counter() - t0)
    per_round = batch * steps
    new_rate = per_round / statistics.median(new_s)
    old_rate = per_round / statistics.median(old_s[True])
    return {
        "crop_device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cache_build_s": round(cold, 2),
        "load_training_set_warm_s": round(warm, 2),
        "upload_s": round(upload, 3),
        "crop_batch": batch,
        "crops_per_s": round(new_rate, 1),
        "crops_per_cpu_s": round(per_round / statistics.median(new_cpu_s), 1),
        "previous_crops_per_s": round(old_rate, 1),
        "speedup_over_previous": round(new_rate / old_rate, 2),
        "speedup_rounds": [round(o / n, 2) for n, o in zip(new_s, old_s[True], strict=True)],
        # The previous sampler's own figure, without the training loop's layout copy.
        "previous_nchw_crops_per_s": round(per_round / statistics.median(old_s[False]), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=6000)
    parser.add_argument("--voxels", type=int, default=15000)
    parser.add_argument("--images", type=int, default=1200)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="batches per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--device", default="cpu", help="where batches are cut: cpu | cuda")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = write_subject(root, args.samples, args.voxels, args.images)
        result = {"benchmark": "data_pipeline", **cpu_info()}
        result.update(bench_load(path, args.samples, args.voxels))
        device = resolve_device(args.device)
        crops = bench_crops(path, root / "images", args.batch, args.steps, device, args.rounds)
        result.update(crops)
    result["load_average_1min"] = round(os.getloadavg()[0], 2)  # other work on the machine
    result["max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["goals"] = {
        "load_select_zscore_s": "< 5",
        "peak_over_array": "< 3",
        "crops_per_s": "> 2x previous_crops_per_s on 2 CPU cores; > 50,000 on a GPU",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
