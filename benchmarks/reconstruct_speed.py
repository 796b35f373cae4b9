"""Benchmark: reconstruct a paper-sized subject's test sets end to end from files (goal < 10 s).

Writes three lab-style BData test files (natural 50 x 24, shapes 40 x 20, letters
10 x 12 presentations of 12,000 voxels) and a generator of the published
architecture (4096-wide layers, 256 px output) carrying its normalisation
statistics, then times, in the same run:

- ``reconstruct_s``: ``e2e-recon reconstruct``'s library call, from the files to the
  ``.mat``/``.tif``/``.png`` outputs and ``index.csv`` (model load included);
- ``reference_forward_s``: the generator's forward pass alone on the same 100
  averaged patterns (the floor: the network's own cost).

Usage: .venv/bin/python benchmarks/reconstruct_speed.py [--voxels 12000]
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from e2e_recon.data.bdata import BData
from e2e_recon.data.dataset import NormStats
from e2e_recon.device import cpu_info
from e2e_recon.nets.generator import Generator
from e2e_recon.nets.loading import save_network
from e2e_recon.recon.pipeline import reconstruct_cli

SETS = {"NaturalImageTest": (50, 24), "ArtificialImage": (40, 20), "LetterImage": (10, 12)}


def write_test_file(path: Path, n_images: int, n_reps: int, n_voxels: int, seed: int) -> None:
    """A lab-style test file: VoxelData with ROI_VC, Label and stimulus_id columns."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(1518878.0 + np.arange(1, n_images + 1) / 1e6, n_reps)  # (n,)
    bd = BData()
    bd.add(rng.normal(0.0, 1.0, size=(ids.size, n_voxels)), "VoxelData")
    bd.add(np.stack([np.ones(ids.size), ids], axis=1), "Label")
    bd.add(ids, "stimulus_id")
    bd.add_metadata("ROI_VC", np.ones(n_voxels), "1 = VC", where="VoxelData")
    bd.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxels", type=int, default=12_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = []
        for seed, (name, (n_images, n_reps)) in enumerate(SETS.items()):
            path = root / f"sub-01_perception{name}_original_VC.h5"
            write_test_file(path, n_images, n_reps, args.voxels, seed)
            files.append(path)
        torch.manual_seed(0)
        generator = Generator(n_voxels=args.voxels)  # the published architecture
        norm = NormStats(
            np.zeros(args.voxels, np.float32), np.ones(args.voxels, np.float32), "ROI_VC = 1"
        )
        model = root / "generator.pt"
        save_network(generator, "generator", model)
        payload = torch.load(model, weights_only=True)
        payload["norm"] = norm.to_dict()
        torch.save(payload, model)

        start = time.perf_counter()
        reconstruct_cli(str(model), files, None, "", None, root / "recon", False, None, "cpu")
        reconstruct_s = time.perf_counter() - start

        x = torch.randn(sum(n for n, _ in SETS.values()), args.voxels)  # (100, V)
        start = time.perf_counter()
        with torch.no_grad():
            for batch in x.split(64):
                generator.eval()(batch)
        reference_s = time.perf_counter() - start
    print(
        json.dumps(
            {
                "benchmark": "reconstruct_speed",
                "n_images": int(x.shape[0]),
                "n_voxels": args.voxels,
                "reconstruct_s": round(reconstruct_s, 2),
                "reference_forward_s": round(reference_s, 2),
                "goal_s": 10.0,
                "meets_goal": reconstruct_s < 10.0,
                **cpu_info(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
