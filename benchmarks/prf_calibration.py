"""Ridge pixel identification on pRF-family subjects across SNRs; prints one JSON object.

For each SNR a subject of the chosen preset of the pRF family (``e2e_recon.sim.prf``,
``e2e-recon simulate --preset prf-<name>``; here without ``prf-``) is written and read
back through e2e-recon's loaders exactly as ``configs/small.yaml`` reads it (72 px
images, 64 px centre crops, ``ROI_VC = 1``, 10% of the training images held out as
``train/`` does for validation). Two decoders are fitted on the same z-scored single
trials and crops: the project's ridge (``recon.baselines.RidgeDecoder``) and
scikit-learn's ``RidgeCV`` (efficient leave-one-out over ``np.logspace(0, 7, 15)``).
Both are scored by pairwise identification (Pearson correlation of the 64 px pixels,
greyscale when every stimulus is grey) on the trial-averaged test set. The noise
ceiling is the median over VC voxels of the truth-based explainable variance of a
test mean, in percent.

    PYTHONPATH=src .venv/bin/python benchmarks/prf_calibration.py
    PYTHONPATH=src .venv/bin/python benchmarks/prf_calibration.py --preset digits-90x1 \\
        --snrs 0.1,0.3 --seeds 0,1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def score(summary: dict[str, Any], cache: Path) -> dict[str, float]:
    """Pairwise identification of both ridges on one subject."""
    from sklearn.linear_model import RidgeCV

    from e2e_recon.data.dataset import load_test_set, load_training_set
    from e2e_recon.data.images import center_crop_uint8
    from e2e_recon.evaluate.metrics import pairwise_identification
    from e2e_recon.recon.baselines import RidgeDecoder

    files, images = summary["files"], summary["images_dir"]
    n_val = round(0.1 * summary["sets"]["training"]["images"])
    train = load_training_set(files["training"], images, "ROI_VC = 1", 72, cache, 0, n_val, 0)
    test = load_test_set(files["test"], images, "ROI_VC = 1", train.norm, 72, cache)
    assert test.images is not None
    crops = center_crop_uint8(np.asarray(train.images), 64)  # (M, 64, 64, 3) BGR
    truth = center_crop_uint8(test.images, 64).astype(np.float64)
    grey = bool((crops == crops[..., :1]).all() and (truth == truth[..., :1]).all())
    flat_truth = (truth[..., :1] if grey else truth).reshape(len(truth), -1)
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a limit-of-search warning does not change the figure
        ours = RidgeDecoder(decode_px=64).fit(train.voxels, crops, train.image_index)
    pred = ours.predict(test.voxels)  # (M, 64, 64, 3)
    pred = pred.mean(axis=-1, keepdims=True) if grey else pred
    out["ridge"] = float(pairwise_identification(pred.reshape(len(pred), -1), flat_truth).mean())
    targets = (crops[..., :1] if grey else crops).reshape(len(crops), -1).astype(np.float64)
    sk = RidgeCV(alphas=np.logspace(0, 7, 15)).fit(
        train.voxels.astype(np.float64), targets[train.image_index]
    )
    pred_sk = sk.predict(test.voxels.astype(np.float64))
    out["ridge_sklearn"] = float(pairwise_identification(pred_sk, flat_truth).mean())
    out["sklearn_alpha"] = float(sk.alpha_)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mixed-800x2")
    parser.add_argument("--snrs", default="0.05,0.1,0.2,0.3")
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args(argv)
    from e2e_recon.sim.prf.subject import PRESETS, simulate_prf_subject

    preset = vars(PRESETS[args.preset])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for snr in (float(s) for s in args.snrs.split(",")):
            for seed in (int(s) for s in args.seeds.split(",")):
                out = Path(tmp) / f"subject_{snr:g}_{seed}"
                summary = simulate_prf_subject(out, snr=snr, seed=seed, **preset)
                row = {"snr": snr, "seed": seed, **score(summary, Path(tmp) / "cache")}
                row["noise_ceiling_median_pct"] = summary["median_noise_ceiling_pct"]
                row["simulator_ridge"] = summary["ridge_pairwise_identification"]
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    print(json.dumps({"benchmark": "prf_calibration", "preset": args.preset, **preset,
                      "rows": rows}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
