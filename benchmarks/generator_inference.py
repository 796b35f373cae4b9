"""Benchmark: generator inference speed on CPU, published architecture.

Times the forward pass of the published generator (4096-wide fully connected
layers, 256 x 256 output) at batch 1 and batch 64, in images per second, with
``torch.inference_mode``. Float32 is the reference; when the processor has
native bf16 (AVX-512 BF16 or AMX) bf16 autocast is measured in the same run for
comparison. Weights are random (they do not change the time).

Usage: .venv/bin/python benchmarks/generator_inference.py [--voxels 10000] [--iters 2]
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from e2e_recon.device import cpu_info
from e2e_recon.nets.generator import Generator


def images_per_second(generator: Generator, batch: int, iters: int, bf16: bool) -> float:
    """Best-of-``iters`` throughput after one warm-up pass."""
    x = torch.randn(batch, generator.n_voxels)  # (B, n_voxels)
    best = float("inf")
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        generator(x)  # warm-up
        for _ in range(iters):
            start = time.perf_counter()
            generator(x)  # (B, 3, 256, 256)
            best = min(best, time.perf_counter() - start)
    return batch / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxels", type=int, default=10000)
    parser.add_argument("--iters", type=int, default=2)
    args = parser.parse_args()
    info = cpu_info()
    generator = Generator(n_voxels=args.voxels).eval()
    result: dict[str, Any] = {
        "benchmark": "generator_inference",
        "architecture": "published (3 x 4096 fc, 256 x 256 output)",
        "n_voxels": args.voxels,
        "parameters_m": round(sum(p.numel() for p in generator.parameters()) / 1e6, 1),
    }
    for batch, iters in ((1, max(args.iters, 5)), (64, args.iters)):
        result[f"fp32_batch{batch}_images_per_s"] = round(
            images_per_second(generator, batch, iters, bf16=False), 2
        )
    if info["avx512_bf16"] or info["amx_bf16"]:
        for batch, iters in ((1, max(args.iters, 5)), (64, args.iters)):
            result[f"bf16_batch{batch}_images_per_s"] = round(
                images_per_second(generator, batch, iters, bf16=True), 2
            )
    print(json.dumps(result | info))


if __name__ == "__main__":
    main()
