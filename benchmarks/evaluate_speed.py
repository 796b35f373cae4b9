"""Time ``evaluate_recon`` on 100 reconstructions at 227 px (goal: under 10 s on CPU).

Makes a temporary folder with 100 stimulus JPEGs (500 x 375) and 100 ``.mat``
reconstructions, then times the evaluation with and without the default
feature network (EfficientNet-Lite2), in float32 and with ``precision="auto"``.
Reference measured in the same run: bdpy's pairwise identification on the same
pixels, against ours. Prints one JSON object.

Usage: .venv/bin/python benchmarks/evaluate_speed.py [--images 100]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from e2e_recon.device import cpu_info
from e2e_recon.evaluate.evaluate import evaluate_recon
from e2e_recon.evaluate.metrics import pairwise_identification


def make_folder(root: Path, n_images: int, seed: int = 0) -> tuple[Path, Path]:
    """Smooth random stimuli and noisy reconstructions, in the reconstruct layout."""
    rng = np.random.default_rng(seed)
    recon_dir, images_dir = root / "recon", root / "images" / "test"
    (recon_dir / "e2e" / "natural").mkdir(parents=True)
    images_dir.mkdir(parents=True)
    rows = []
    for i in range(n_images):
        name = f"n{1000000 + i:08d}_{i}"
        coarse = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((500, 375), Image.Resampling.BICUBIC).save(
            images_dir / f"{name}.JPEG", quality=90
        )
        recon = rng.uniform(0, 255, size=(227, 227, 3))
        scipy.io.savemat(recon_dir / "e2e" / "natural" / f"{name}.mat", {"gen_img": recon})
        rel = f"e2e/natural/{name}"
        rows.append(["e2e", "natural", f"{1000000 + i}.{i:06d}", name, 24, rel + ".mat", "", ""])
    with (recon_dir / "index.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["method", "set", "stimulus_id", "stimulus_name", "n_trials", "mat", "tif", "png"]
        )
        writer.writerows(rows)
    return recon_dir, images_dir.parent


def timed(function, *args, **kwargs) -> float:  # type: ignore[no-untyped-def]
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    function(*args, **kwargs)
    return round(time.perf_counter() - start, 3)


def timed_with_cpu(function, *args, **kwargs) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Wall-clock and process CPU seconds (CPU time is less affected by other load)."""
    cpu = time.process_time()
    wall = timed(function, *args, **kwargs)
    return {"wall_s": wall, "cpu_s": round(time.process_time() - cpu, 3)}


def identification_reference(n_images: int) -> dict[str, float | None]:
    """Ours against bdpy's pairwise identification on (N, 227*227*3) float64 arrays."""
    rng = np.random.default_rng(1)
    true = rng.uniform(0, 255, size=(n_images, 227 * 227 * 3))
    pred = true + rng.normal(scale=300, size=true.shape)
    ours = timed(pairwise_identification, pred, true)
    try:
        from bdpy.evals.metrics import pairwise_identification as bdpy_identification
    except ImportError:
        return {"ours_s": ours, "bdpy_s": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = timed(bdpy_identification, pred, true)
    return {"ours_s": ours, "bdpy_s": reference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        recon_dir, images_dir = make_folder(Path(tmp), args.images)
        common = {"resolution_px": 64, "n_boot": 1000, "device": "cpu"}
        pixel_only = timed_with_cpu(
            evaluate_recon, recon_dir, images_dir, feature_nets=(), **common
        )
        fp32 = timed_with_cpu(evaluate_recon, recon_dir, images_dir, precision="fp32", **common)
        auto = timed_with_cpu(evaluate_recon, recon_dir, images_dir, precision="auto", **common)
        result = json.loads((recon_dir / "metrics.json").read_text())
    print(
        json.dumps(
            {
                "benchmark": "evaluate_recon",
                "images": args.images,
                "size_px": 227,
                "goal_s": 10.0,
                "pixel_metrics_only": pixel_only,
                "with_efficientnet_lite2_fp32": fp32,
                "with_efficientnet_lite2_auto": auto,
                "auto_precision": result["settings"]["feature_precision"],
                "pixel_identification_reference": identification_reference(args.images),
                "load_average_1min": round(os.getloadavg()[0], 2),
                **cpu_info(),
            }
        )
    )


if __name__ == "__main__":
    main()
