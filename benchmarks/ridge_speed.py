"""Time fitting and applying the ridge pixel decoder at (or below) paper size.

Paper size: 6,000 training samples (1,200 images x 5), 15,000 voxels, images
227 px decoded at 64 px with 512 components. Synthetic data: smooth random
images, voxels a noisy linear view of them (isotropic and low-rank noise). Prints one JSON object.

Usage: .venv/bin/python benchmarks/ridge_speed.py [--samples 6000 --voxels 15000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from e2e_recon.device import cpu_info
from e2e_recon.recon.baselines import RidgeDecoder


def synthetic(n_samples: int, n_voxels: int, repeats: int = 5, seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    n_images = n_samples // repeats
    coarse = torch.from_numpy(rng.uniform(0, 255, size=(n_images, 3, 8, 8)).astype(np.float32))
    images = F.interpolate(coarse, size=(227, 227), mode="bicubic", align_corners=False)
    images = images.clamp(0, 255).permute(0, 2, 3, 1).to(torch.uint8).numpy()  # (M, 227, 227, 3)
    groups = np.repeat(np.arange(n_images), repeats)
    mixing = rng.normal(size=(8 * 8 * 3, n_voxels)).astype(np.float32) / 3000
    clean = coarse.reshape(n_images, -1).numpy() @ mixing  # (M, V)
    # Noise: isotropic plus a shared low-rank part (as physiological noise is).
    shared = rng.normal(size=(n_samples, 20)) @ rng.normal(size=(20, n_voxels)) / 2
    noise = rng.normal(size=(n_samples, n_voxels)) + shared
    voxels = (clean[groups] + noise).astype(np.float32)
    return voxels, images, groups, clean[:50]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6000)
    parser.add_argument("--voxels", type=int, default=15000)
    parser.add_argument("--decode-px", type=int, default=64)
    args = parser.parse_args()
    voxels, images, groups, test = synthetic(args.samples, args.voxels)
    decoder = RidgeDecoder(decode_px=args.decode_px)
    start, cpu = time.perf_counter(), time.process_time()
    decoder.fit(voxels, images, groups)
    fit_s, fit_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    decoded = decoder.predict(test)
    predict_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        size_mb = decoder.save(Path(tmp) / "ridge.npz").stat().st_size / 1e6
    print(
        json.dumps(
            {
                "benchmark": "RidgeDecoder",
                "samples": args.samples,
                "voxels": args.voxels,
                "images": len(images),
                "decode_px": args.decode_px,
                "output_px": decoded.shape[1],
                "fit_s": round(fit_s, 2),
                "fit_cpu_s": round(fit_cpu_s, 2),
                "predict_50_s": round(predict_s, 3),
                "saved_mb": round(size_mb, 1),
                "alpha_grid_index": int(np.argmin(decoder.cv_errors_)),
                "alphas_tried": len(decoder.alphas_),
                "load_average_1min": round(os.getloadavg()[0], 2),
                **cpu_info(),
            }
        )
    )


if __name__ == "__main__":
    main()
