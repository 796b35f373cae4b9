"""Time one training iteration: the project's step against a plain reference step.

Paper configuration by default: batch 64, 227 px crops, 15,000 voxels, the full
generator (4096-wide, 256 px output), CaffeNet comparator (random weights: the
timing does not depend on them) on pool5, and the discriminator. One iteration is
the forward and backward passes of all networks and both Adam steps (D and G both
training). The project step is ``e2e_recon.train.step.training_step`` with the
project defaults (precision ``auto``, decided as a training run decides it: the step
timed in fp32 and bf16 on copies of its networks, reported in ``precision_choice``;
channels-last, fused Adam, one discriminator pass on real and fake together,
discriminator weights frozen in the generator pass). The reference is a plain
implementation of the same iteration kept here: float32, eager, default memory
format, default Adam.

``--preset demo`` times the demo's step instead (configs/demo.yaml: 64 px, EfficientNet-Lite0
comparator, batch 32, 3,000 voxels; no reference). FLOPs are counted with torch's
``FlopCounterMode`` (convolutions and matrix products, forward and backward);
``--peak-tflops`` (the device's datasheet peak for the precision used) adds the
fraction of peak reached.

Prints one JSON object, with the CPU model, its bf16 flags and the load average beside
the figures. Quick run: ``python benchmarks/train_step.py --batch 8 --iters 2``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from e2e_recon.config import load_config
from e2e_recon.device import PrecisionChoice, allows_tf32, cpu_info, resolve_device, tf32_mode
from e2e_recon.nets.discriminator import Discriminator
from e2e_recon.nets.generator import Generator, center_crop
from e2e_recon.nets.loading import load_comparator
from e2e_recon.train import losses
from e2e_recon.train.balance import BalanceState
from e2e_recon.train.distributed import DistInfo
from e2e_recon.train.precision_probe import choose_run_precision
from e2e_recon.train.step import StepSettings, build_nets, build_optimisers, training_step


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--voxels", type=int, default=15_000)
    parser.add_argument("--iters", type=int, default=3, help="timed iterations (after 1 warm-up)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", help="project step: auto | fp32 | bf16")
    parser.add_argument("--compile", action="store_true", help="project step with torch.compile")
    parser.add_argument(
        "--remeasure", action="store_true", help="auto: time the step even if a verdict is cached"
    )
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument(
        "--tf32",
        action="store_true",
        help="allow TF32 on CUDA with --precision fp32 (auto and bf16 allow it anyway)",
    )
    parser.add_argument(
        "--preset",
        default="paper",
        choices=("paper", "demo"),
        help="paper: 227 px, CaffeNet-sized random comparator; demo: 64 px, configs/demo.yaml",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=0.0,
        help="the device's peak for this precision (datasheet); prints the fraction reached",
    )
    return parser.parse_args(argv)


def _batch(
    batch: int, voxels: int, device: torch.device, crop: int = 227
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, voxels, generator=g)  # (B, V)
    real = torch.rand(batch, 3, crop, crop, generator=g) * 255 - 117  # (B, 3, crop, crop)
    return x.to(device), real.to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(step: Callable[[], None], iters: int, device: torch.device) -> list[float]:
    step()  # warm-up: allocations, oneDNN / cuDNN kernel choice, compilation
    _sync(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000)
    return times


def project_step(
    args: argparse.Namespace, device: torch.device
) -> tuple[Callable[[], None], PrecisionChoice]:
    """The project's training step with its defaults; ``auto`` decided as a training run does."""
    overrides = ["model.comparator=random-caffenet"] if args.preset == "paper" else []
    cfg = load_config(
        args.preset,
        [
            *overrides,
            f"train.precision={args.precision}",
            f"train.compile={str(args.compile).lower()}",
            f"train.batch_size={args.batch}",
        ],
    )
    torch.manual_seed(0)
    nets = build_nets(cfg, args.voxels, device, DistInfo())
    opt = build_optimisers(cfg, nets, device)
    choice = choose_run_precision(cfg, nets, args.batch, device, remeasure=args.remeasure)
    dtype = choice.dtype
    settings = StepSettings(cfg.data.crop_px, tuple(cfg.model.feature_layers), device, dtype)
    weights = losses.LossWeights()
    x, real = _batch(args.batch, args.voxels, device, cfg.data.crop_px)
    real = real.contiguous(memory_format=torch.channels_last)
    both = BalanceState(train_d=True, train_g=True)

    def step() -> None:
        training_step(nets, opt, x, real, both, weights, settings)

    return step, choice


def reference_step(args: argparse.Namespace, device: torch.device) -> Callable[[], None]:
    """A plain float32 eager implementation of the same iteration."""
    torch.manual_seed(0)
    generator = Generator(args.voxels).to(device)
    discriminator = Discriminator(227).to(device)
    comparator = load_comparator(None, kind="random-caffenet").to(device)
    opt_g = torch.optim.Adam([p for p in generator.parameters() if p.requires_grad], lr=2e-4)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, weight_decay=4e-4)
    x, real = _batch(args.batch, args.voxels, device)
    ce = nn.CrossEntropyLoss()
    real_label = torch.zeros(args.batch, dtype=torch.long, device=device)
    fake_label = torch.ones(args.batch, dtype=torch.long, device=device)

    def step() -> None:
        with torch.no_grad():
            real_feat = comparator(real)["pool5"]
        fake = center_crop(generator(x), 227)
        opt_d.zero_grad()
        loss_d = ce(discriminator(real), real_label) + ce(discriminator(fake.detach()), fake_label)
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        loss_img = ((fake - real) ** 2).sum() / 2 / args.batch
        loss_feat = ((comparator(fake)["pool5"] - real_feat) ** 2).sum() / 2 / args.batch
        loss_adv = ce(discriminator(fake), real_label)
        (2e-6 * loss_img + 0.01 * loss_feat + 100 * loss_adv).backward()
        opt_g.step()

    return step


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def main(argv: list[str]) -> dict[str, object]:
    """Run the benchmark; TF32 as a training run with this precision would have it."""
    args = _args(argv)
    tf32 = args.tf32 or allows_tf32(args.precision)
    with tf32_mode(tf32):
        result = _run(args)
    result["tf32"] = tf32 and str(result["device"]).startswith("cuda")
    return result


def _run(args: argparse.Namespace) -> dict[str, object]:
    if args.preset == "demo":
        args.skip_reference = True  # the reference step is the paper's architecture
        args.voxels = 3_000 if args.voxels == 15_000 else args.voxels
    device = resolve_device(args.device)
    measuring = time.perf_counter()
    step, choice = project_step(args, device)
    setup_s = time.perf_counter() - measuring  # networks, and the measurement of auto
    started = time.perf_counter()
    step()  # first call: allocations, kernel choice and, with --compile, compilation
    _sync(device)
    first_s = time.perf_counter() - started
    # Counted in eager mode (the same FLOPs): a dispatch mode inside compiled code would
    # make it recompile.
    with torch.compiler.set_stance("force_eager"), FlopCounterMode(display=False) as flops:
        step()
    times = _time(step, args.iters, device)
    peak_project = _peak_rss_mb()
    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    del step
    result: dict[str, object] = {
        "benchmark": "train_step",
        "batch": args.batch,
        "voxels": args.voxels,
        "crop_px": 64 if args.preset == "demo" else 227,
        "device": str(device),
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
        "precision": choice.name,
        "precision_requested": args.precision,
        "precision_choice": choice.to_dict(),
        "setup_s": round(setup_s, 1),
        "compile": args.compile,
        "iters_timed": args.iters,
        "preset": args.preset,
        "first_iter_s": round(first_s, 1),
        "ms_per_iter": round(statistics.median(times), 1),
        "ms_per_iter_all": [round(t, 1) for t in times],
        "gflop_per_iter": round(flops.get_total_flops() / 1e9, 2),
        "tflops": round(flops.get_total_flops() / statistics.median(times) / 1e9, 3),
        "peak_rss_mb": round(peak_project, 1),
        "cuda_peak_allocated_mb": round(cuda_peak, 1) if cuda_peak is not None else None,
    }
    if not args.skip_reference:
        ref_times = _time(reference_step(args, device), args.iters, device)
        result["reference_ms_per_iter"] = round(statistics.median(ref_times), 1)
        result["reference_ms_per_iter_all"] = [round(t, 1) for t in ref_times]
        result["speedup"] = round(statistics.median(ref_times) / statistics.median(times), 2)
        result["peak_rss_mb_with_reference"] = round(_peak_rss_mb(), 1)
    if args.peak_tflops > 0:
        result["fraction_of_peak"] = round(float(str(result["tflops"])) / args.peak_tflops, 3)
    result.update(cpu_info())
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
