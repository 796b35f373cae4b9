"""Benchmark: read a ~400 MB generator .caffemodel (goal: under 3 s).

Builds a file of the published generator architecture with the project's test
writer (the number of voxels sets the size: 15,000 voxels gives about 400 MB),
then times, in the same run:

- ``reference_fromfile_s``: reading the raw bytes with ``numpy.fromfile`` (the
  floor any reader pays for getting the bytes into memory);
- ``read_caffemodel_s``: :func:`e2e_recon.caffe.wire.read_caffemodel_blobs`;
- ``load_generator_s``: :func:`e2e_recon.nets.load_generator` (read, build the
  network, copy weights in).

The file is read once before timing, so all figures are for a warm page cache.
Usage: .venv/bin/python benchmarks/caffe_read.py [--voxels 15000] [--repeats 2]
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from e2e_recon.caffe.wire import read_caffemodel_blobs, write_caffemodel
from e2e_recon.device import cpu_info
from e2e_recon.nets import load_generator
from e2e_recon.nets.generator import Generator


def published_generator_blobs(n_voxels: int, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Caffe blobs (weight, bias) of the published generator, random float32 values."""
    rng = np.random.default_rng(seed)
    with torch.device("meta"):  # shapes only, no memory
        shapes = {k: tuple(v.shape) for k, v in Generator(n_voxels).state_dict().items()}
    blobs: dict[str, list[np.ndarray]] = {}
    for key, shape in shapes.items():
        array = rng.standard_normal(size=shape, dtype=np.float32)
        blobs.setdefault(key.rsplit(".", 1)[0], []).append(array)
    return blobs


def best_of(repeats: int, work: Any) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxels", type=int, default=15000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "generator.caffemodel"
        start = time.perf_counter()
        write_caffemodel(path, published_generator_blobs(args.voxels))
        write_s = time.perf_counter() - start
        size_mb = path.stat().st_size / 1e6
        np.fromfile(path, dtype=np.uint8)  # warm the page cache
        reference = best_of(args.repeats, lambda: np.fromfile(path, dtype=np.uint8))
        read = best_of(args.repeats, lambda: read_caffemodel_blobs(path))
        load = best_of(args.repeats, lambda: load_generator(path))
    result = {
        "benchmark": "caffe_read",
        "file_mb": round(size_mb, 1),
        "n_voxels": args.voxels,
        "write_s": round(write_s, 2),
        "reference_fromfile_s": round(reference, 3),
        "read_caffemodel_s": round(read, 3),
        "read_mb_per_s": round(size_mb / read),
        "load_generator_s": round(load, 3),
        "goal_read_under_s": 3.0,
        "goal_met": read < 3.0,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        **cpu_info(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
