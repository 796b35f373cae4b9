"""The demo's iteration with the adversarial and feature terms every k-th iteration only.

For each schedule ``A/F`` (``train.adversarial_every_iters`` A, ``train.feature_every_iters``
F; ``1/1`` is every iteration), runs whole cycles of the demo's training step
(``configs/demo.yaml``: batch 32, 64 px, EfficientNet-Lite0 comparator, 3,000 voxels, fp32)
with the loop's rule (:class:`e2e_recon.train.term_schedule.TermSchedule`) and reports the
mean time and FLOPs per iteration. The schedules are timed in interleaved rounds in one
process (the same networks), so that a change in the machine's load touches all of them;
``ratio`` is each schedule's median time over the first schedule's.

Usage: .venv/bin/python benchmarks/term_schedule_speed.py [--schedules 1/1,8/4] [--rounds 5]
Prints one JSON object, with the CPU model and its bf16 flags beside the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from dataclasses import replace

import torch
from torch.utils.flop_counter import FlopCounterMode

from e2e_recon.config import load_config
from e2e_recon.device import cpu_info
from e2e_recon.train import losses
from e2e_recon.train.balance import BalanceState
from e2e_recon.train.distributed import DistInfo
from e2e_recon.train.step import StepSettings, build_nets, build_optimisers, training_step
from e2e_recon.train.term_schedule import TermSchedule


def parse_schedules(text: str) -> list[TermSchedule]:
    """``"1/1,8/4"`` -> schedules (adversarial every A, feature every F)."""
    schedules = []
    for item in text.split(","):
        adversarial, feature = (int(v) for v in item.split("/"))
        schedules.append(TermSchedule(adversarial, feature))
    return schedules


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schedules", default="1/1,4/1,4/2,8/4", help="A/F,A/F,...")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--cycles", type=int, default=1, help="whole cycles per round")
    parser.add_argument("--batch", type=int, default=0, help="0: the demo's (32)")
    args = parser.parse_args(argv)
    schedules = parse_schedules(args.schedules)
    cycle = math.lcm(
        *(s.adversarial_every for s in schedules), *(s.feature_every for s in schedules)
    )
    iters = cycle * args.cycles

    cfg = load_config("demo", ["train.precision=fp32"])
    batch = args.batch or cfg.train.batch_size
    device = torch.device("cpu")
    torch.manual_seed(0)
    voxels = 3_000
    nets = build_nets(cfg, voxels, device, DistInfo())
    opt = build_optimisers(cfg, nets, device)
    settings = StepSettings(cfg.data.crop_px, tuple(cfg.model.feature_layers), device)
    skip_adversarial = replace(settings, adversarial=False)
    weights = losses.LossWeights(2e-6, 4e-5, 0.18)  # the demo's normalised weights
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, voxels, generator=g)  # (B, V)
    real = torch.rand(batch, 3, 64, 64, generator=g) * 255 - 117  # (B, 3, 64, 64)
    real = real.contiguous(memory_format=torch.channels_last)
    both = BalanceState(train_d=True, train_g=True)

    def run(schedule: TermSchedule) -> None:
        for i in range(iters):
            due = schedule.adversarial_due(i)
            step_settings = settings if due else skip_adversarial
            training_step(nets, opt, x, real, both, schedule.weights(weights, i), step_settings)

    flops = {}
    for schedule in schedules:
        run(schedule)  # warm-up: allocations and kernel choice for this schedule's passes
        with FlopCounterMode(display=False) as counter:
            run(schedule)
        flops[schedule] = counter.get_total_flops() / iters
    times: dict[TermSchedule, list[float]] = {s: [] for s in schedules}
    for _ in range(args.rounds):
        for schedule in schedules:
            started = time.perf_counter()
            run(schedule)
            times[schedule].append((time.perf_counter() - started) * 1000 / iters)
    first = statistics.median(times[schedules[0]])
    result: dict[str, object] = {
        "benchmark": "term_schedule_speed",
        "batch": batch,
        "iterations_per_round": iters,
        "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(),
        "schedules": [
            {
                "adversarial_every": s.adversarial_every,
                "feature_every": s.feature_every,
                "ms_per_iter": round(statistics.median(times[s]), 1),
                "ms_per_iter_all": [round(t, 1) for t in times[s]],
                "gflop_per_iter": round(flops[s] / 1e9, 2),
                "ratio": round(statistics.median(times[s]) / first, 3),
            }
            for s in schedules
        ],
    }
    result.update(cpu_info())
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
