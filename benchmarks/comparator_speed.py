"""Forward + backward time of the comparator per batch: EfficientNet-Lite0 vs CaffeNet.

Measures what one generator step pays for the feature loss: the comparator's
forward to a given layer and the backward to its input (parameters frozen), at
the demo's resolutions. The CaffeNet architecture (random weights; weights do
not change the time) is measured in the same run as the reference when
``e2e_recon.nets`` provides it. Configurations are timed round-robin, so load
from other processes spreads over all of them; ``min_s`` is the figure to compare.
The same network with its batch norms not folded into the convolutions is timed
as the reference for folding. Also lists the (C, h, w) of every EfficientNet-Lite0
feature at each resolution.

Usage: .venv/bin/python benchmarks/comparator_speed.py [--batch 16] [--sizes 64 128] [--repeats 5]
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from e2e_recon.device import cpu_info
from e2e_recon.nets.efficientnet_lite import load_efficientnet_lite

LITE0_DEPTHS: tuple[str, ...] = ("stage3", "stage5", "head")


def caffenet_reference() -> tuple[nn.Module | None, str]:
    """The project's CaffeNet comparator architecture, or None with the reason it is missing."""
    try:
        loading = importlib.import_module("e2e_recon.nets.loading")
        return loading.load_comparator(kind="random-caffenet"), "nets.loading random-caffenet"
    except (ImportError, AttributeError) as exc:
        first_error = f"{type(exc).__name__}: {exc}"
    try:
        comparator = importlib.import_module("e2e_recon.nets.comparator")
    except ImportError as exc:
        return None, f"skipped: e2e_recon.nets.comparator not available ({exc}; {first_error})"
    for name in ("CaffeNet", "CaffeNetComparator", "Comparator"):
        if hasattr(comparator, name):
            return getattr(comparator, name)(), f"nets.comparator.{name}() random weights"
    return None, "skipped: no CaffeNet class found in e2e_recon.nets.comparator"


def make_step(
    model: nn.Module, layers: tuple[str, ...], batch: int, size_px: int
) -> Callable[[], dict[str, str]]:
    """One forward to ``layers`` and backward to the input; returns the feature shapes."""
    x = torch.randn(batch, 3, size_px, size_px) * 50.0  # (B, 3, S, S), Caffe-space scale

    def step() -> dict[str, str]:
        inp = x.clone().requires_grad_(True)
        features = model(inp, layers=layers)
        loss = sum(f.square().mean() for f in features.values())
        loss.backward()
        return {name: "x".join(map(str, f.shape[1:])) for name, f in features.items()}

    return step


def time_round_robin(
    steps: dict[str, Callable[[], dict[str, str]]], repeats: int
) -> dict[str, dict[str, Any]]:
    """Warm each step up once, then time all of them in turn ``repeats`` times."""
    shapes = {name: step() for name, step in steps.items()}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {
        name: {
            "min_s": round(min(times[name]), 4),
            "median_s": round(statistics.median(times[name]), 4),
            "feature_shapes": shapes[name],
        }
        for name in steps
    }


def feature_sizes(model: nn.Module, size_px: int) -> dict[str, str]:
    """C x h x w of every layer of ``model`` for one (size_px x size_px) input."""
    with torch.no_grad():
        features = model(torch.zeros(1, 3, size_px, size_px), layers=model.layer_names)
    return {name: "x".join(map(str, f.shape[1:])) for name, f in features.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    lite0 = load_efficientnet_lite("lite0")
    lite0_nchw = load_efficientnet_lite("lite0", channels_last=False)
    lite0_unfolded = load_efficientnet_lite("lite0", fold=False)
    caffenet, caffenet_note = caffenet_reference()
    result: dict[str, Any] = {
        "benchmark": "comparator forward+backward to input, seconds per batch, fp32, CPU",
        "batch": args.batch,
        "repeats": args.repeats,
        **cpu_info(),
        "lite0": lite0.weights_label,
        "caffenet_reference": caffenet_note,
        "results": {},
        "lite0_feature_sizes": {str(s): feature_sizes(lite0, s) for s in args.sizes},
    }
    for size_px in args.sizes:
        steps = {
            f"lite0:{layer}": make_step(lite0, (layer,), args.batch, size_px)
            for layer in LITE0_DEPTHS
        }
        steps["lite0:head (NCHW layout)"] = make_step(lite0_nchw, ("head",), args.batch, size_px)
        steps["lite0:stage3 (batch norm not folded)"] = make_step(
            lite0_unfolded, ("stage3",), args.batch, size_px
        )
        if caffenet is not None:
            steps["caffenet:pool5"] = make_step(caffenet, ("pool5",), args.batch, size_px)
        row = time_round_robin(steps, args.repeats)
        if caffenet is not None:
            ratio = row["lite0:head"]["min_s"] / row["caffenet:pool5"]["min_s"]
            row["lite0_head_over_caffenet_pool5"] = {"min_s_ratio": round(ratio, 2)}
        folded = row["lite0:stage3"]["min_s"] / row["lite0:stage3 (batch norm not folded)"]["min_s"]
        row["lite0_stage3_folded_over_not_folded"] = {"min_s_ratio": round(folded, 2)}
        result["results"][str(size_px)] = row
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
