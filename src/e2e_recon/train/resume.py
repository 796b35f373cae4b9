"""Snapshots of a training run, and resuming from them exactly.

A snapshot holds both networks and optimisers, both learning-rate counters, the
balance state, the validation tracker, the moving average, the epoch-order read
position, the normalisation statistics and every rank's random states; restoring
it (random states last, after anything that draws) continues the run bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from e2e_recon.config import to_dict
from e2e_recon.runs import get_logger
from e2e_recon.train import checkpoint as ckpt_io
from e2e_recon.train import distributed
from e2e_recon.train.balance import BalanceState
from e2e_recon.train.ema import GeneratorEMA
from e2e_recon.train.run_state import RunState
from e2e_recon.train.schedule import is_legacy_state
from e2e_recon.train.stats import trim_stats
from e2e_recon.train.validation import BestTracker


def snapshot(run: RunState) -> Path | None:
    """Write a snapshot (rank 0); every rank contributes its random states."""
    generators = {"sampler": run.sample_generator}
    rng_by_rank = distributed.gather_objects(ckpt_io.capture_rng(generators), run.info)
    if not run.info.is_main:
        return None
    return ckpt_io.write_snapshot(run.run_dir / "checkpoints", _checkpoint_dict(run, rng_by_rank))


def _checkpoint_dict(run: RunState, rng_by_rank: list[Any]) -> dict[str, Any]:
    nets, opt = run.nets, run.opt
    ema = {"generator_ema": run.ema.state_dict()} if run.ema is not None else {}
    order = {"data_order": run.order.state_dict()} if run.order is not None else {}
    return ema | order | {
        "format": ckpt_io.CHECKPOINT_FORMAT,
        "version": ckpt_io.FORMAT_VERSION,
        "iteration": run.iteration,
        "generator": ckpt_io.module_state(nets.generator),
        "generator_arch": nets.generator.arch_kwargs(),  # type: ignore[operator]
        "discriminator": ckpt_io.module_state(nets.discriminator),
        "discriminator_arch": nets.discriminator.arch_kwargs(),  # type: ignore[operator]
        "optimizer_g": opt.generator.state_dict(),
        "optimizer_d": opt.discriminator.state_dict(),
        "schedule_g": opt.generator_schedule.state_dict(),  # G's update counter
        "schedule_d": opt.discriminator_schedule.state_dict(),  # D's update counter
        "balance": run.balance.to_dict(),
        "validation": run.best.to_dict(),
        "norm": run.norm,
        "rng": rng_by_rank,
        "world_size": run.info.world_size,
        "config": to_dict(run.cfg),
    }  # fmt: skip


def restore(run: RunState, path: Path) -> None:
    """Load a snapshot into ``run``; random states last, after anything that draws."""
    ckpt = ckpt_io.load_checkpoint(path)
    nets, opt = run.nets, run.opt
    nets.generator.load_state_dict(ckpt["generator"])
    nets.discriminator.load_state_dict(ckpt["discriminator"])
    opt.generator.load_state_dict(ckpt["optimizer_g"])
    opt.discriminator.load_state_dict(ckpt["optimizer_d"])
    _restore_schedules(run, ckpt, path)
    _restore_ema(run, ckpt, path)
    run.balance = BalanceState.from_dict(ckpt["balance"])
    if "validation" in ckpt:
        run.best = BestTracker.from_dict(dict(ckpt["validation"]))
    run.iteration = int(ckpt["iteration"])
    _restore_order(run, ckpt, path)
    rng = ckpt["rng"]
    generators = {"sampler": run.sample_generator}
    if len(rng) == run.info.world_size:
        ckpt_io.restore_rng(rng[run.info.rank], generators)
    elif run.info.is_main:
        get_logger().warning(
            "%s was written by %d process(es), this run has %d: random streams restart "
            "from the seed, so the continuation is not bit-identical",
            path, len(rng), run.info.world_size,
        )  # fmt: skip
    if run.info.is_main:
        trim_stats(run.run_dir / "stats.jsonl", run.iteration)
        get_logger().info("resumed from %s at iteration %d", path, run.iteration)


def _restore_order(run: RunState, ckpt: dict[str, Any], path: Path) -> None:
    """The read position in the epoch order; a snapshot without one read every batch at
    random, so the order continues where the iterations so far would have left it."""
    if run.order is None:
        return
    if "data_order" in ckpt:
        run.order.load_state_dict(dict(ckpt["data_order"]))
        return
    run.order.position = run.iteration * run.cfg.train.batch_size % run.order.n_samples
    if run.info.is_main:
        get_logger().warning(
            "%s holds no epoch-order position (data.sampling was random): the fixed order "
            "is read from position %d",
            path, run.order.position,
        )  # fmt: skip


def _restore_schedules(run: RunState, ckpt: dict[str, Any], path: Path) -> None:
    """Both networks' update counters; an older snapshot counted loop iterations for both."""
    opt = run.opt
    opt.generator_schedule.load_state_dict(ckpt["schedule_g"])
    opt.discriminator_schedule.load_state_dict(ckpt["schedule_d"])
    if is_legacy_state(ckpt["schedule_d"]) and run.info.is_main:
        get_logger().warning(
            "%s predates per-network learning-rate schedules: both update counters start "
            "from its iteration count (%d) and count each network's own updates from here",
            path, opt.discriminator_schedule.updates,
        )  # fmt: skip


def _restore_ema(run: RunState, ckpt: dict[str, Any], path: Path) -> None:
    """Load the averaged generator; without one in ``ckpt``, start it from the loaded weights."""
    if run.ema is None:
        return
    if "generator_ema" in ckpt:
        run.ema.load_state_dict(ckpt["generator_ema"])
        return
    get_logger().warning(
        "%s holds no averaged generator (train.ema_decay was off): the average starts "
        "from the resumed weights",
        path,
    )
    run.ema = GeneratorEMA(run.nets.generator, run.ema.decay)
