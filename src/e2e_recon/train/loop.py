"""``train(cfg, run_dir)``: the published DeePSiM training procedure, resumable.

The loop around :func:`e2e_recon.train.step.training_step`:

1. sample a batch (z-scored voxels and random crops, one ``torch.Generator``);
2. run one iteration (D step, then G step; see ``step.py``);
3. average the unweighted losses over the ranks and apply the balance rule;
4. advance the learning-rate schedules;
5. log, draw a grid of current reconstructions, snapshot, as configured.

Ctrl-C (SIGINT) or SIGTERM finishes the current iteration, writes a snapshot and
returns. A non-finite loss writes a snapshot of the last finite state and raises
:class:`~e2e_recon.errors.TrainingError`. ``train(cfg, run_dir, resume=True)``
continues from ``run_dir/checkpoints/latest.pt`` exactly where it stopped.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import torch

from e2e_recon.config import Config, to_dict
from e2e_recon.device import resolve_device, resolve_precision
from e2e_recon.errors import ConfigError, TrainingError
from e2e_recon.runs import get_logger, init_run_dir
from e2e_recon.train import checkpoint as ckpt_io
from e2e_recon.train import distributed
from e2e_recon.train.balance import BalanceState, BalanceThresholds, balance_ratio, update_balance
from e2e_recon.train.losses import LossWeights, weights_at
from e2e_recon.train.stats import GridPatterns, Recorder, save_grid, trim_stats
from e2e_recon.train.step import (
    Nets,
    NonFiniteLoss,
    Optimisers,
    StepSettings,
    build_nets,
    build_optimisers,
    training_step,
)

_LOGGED = ("loss_g", "loss_d", "image", "feature", "adversarial", "d_real", "d_fake")


@dataclass
class _Run:
    """Everything one training process holds."""

    cfg: Config
    run_dir: Path
    info: distributed.DistInfo
    nets: Nets
    opt: Optimisers
    sampler: Any  # data.dataset.CropSampler
    norm: dict[str, Any]
    settings: StepSettings
    grid: GridPatterns | None
    batch_per_rank: int
    sample_generator: torch.Generator
    balance: BalanceState = field(default_factory=BalanceState)
    iteration: int = 0


def train(cfg: Config, run_dir: Path, resume: bool = False) -> dict[str, Any]:
    """Train a generator with the DeePSiM losses; return a summary.

    Parameters
    ----------
    cfg : Config
        The run description (``train``, ``loss``, ``model`` and ``data`` sections).
    run_dir : Path
        Run directory (created and given ``config.yaml`` when needed).
    resume : bool
        Continue from ``run_dir/checkpoints/latest.pt`` (or the newest readable
        snapshot) with the same weights, optimiser moments, balance state and
        random streams.

    Returns
    -------
    dict
        ``iterations``, ``start_iteration``, ``interrupted``, ``seconds``,
        ``it_per_s``, ``last`` (last unweighted losses), ``balance``,
        ``checkpoint``, ``generator`` (project .pt with ``norm``), ``device``,
        ``precision``, ``world_size``, ``run_dir``.

    Raises
    ------
    TrainingError
        A loss became non-finite (a snapshot of the last finite state is written).
    CheckpointError
        ``resume`` without a loadable checkpoint.
    """
    check_supported(cfg)
    run_dir = Path(run_dir)
    info, device = distributed.setup(resolve_device(cfg.train.device))
    try:
        if info.is_main:
            init_run_dir(run_dir, cfg)
        distributed.barrier(info)
        run = _prepare(cfg, run_dir, info, device)
        if resume:
            _restore(run, ckpt_io.find_resume_checkpoint(run_dir))
        elif info.is_main:
            trim_stats(run_dir / "stats.jsonl", 0)
        return _run_loop(run)
    finally:
        distributed.teardown()


def check_supported(cfg: Config) -> None:
    """Refuse settings that this trainer does not implement yet, naming the key."""
    unsupported = {
        "train.presentation_average_k": (cfg.train.presentation_average_k, 1),
        "train.val_every_iters": (cfg.train.val_every_iters, 0),
        "train.early_stop_patience": (cfg.train.early_stop_patience, 0),
    }
    for key, (value, default) in unsupported.items():
        if value != default:
            raise ConfigError(
                f"{key}={value} is not supported by this trainer yet; set {key}={default}"
            )
    if cfg.train.iters < 1 or cfg.train.batch_size < 1:
        raise ConfigError("train.iters and train.batch_size must be at least 1")


def load_data(cfg: Config) -> Any:
    """The training set of ``cfg.data`` (a ``data.dataset.TrainingSet``)."""
    from e2e_recon.data.dataset import load_training_set

    d = cfg.data
    if not d.train_fmri or not d.images_dir:
        raise ConfigError(
            "training needs data.train_fmri (a BData .h5) and data.images_dir (the stimulus "
            "images): pass --train-fmri and --images, or set them in the config"
        )
    return load_training_set(
        d.train_fmri,
        d.images_dir,
        roi=d.roi,
        image_size_px=d.image_size_px,
        cache_dir=d.cache_dir or None,
        train_images=d.train_images,
        val_images=d.val_images,
        seed=cfg.train.seed,
        drop_nonfinite=d.drop_nonfinite_voxels,
    )


def loss_weights(cfg: Config) -> LossWeights:
    """The configured loss weights."""
    return LossWeights(cfg.loss.image_weight, cfg.loss.feature_weight, cfg.loss.adversarial_weight)


def thresholds(cfg: Config) -> BalanceThresholds:
    """The configured balance-rule thresholds."""
    t = cfg.train
    return BalanceThresholds(
        t.balance_stop_d_below, t.balance_resume_d_above, t.balance_stop_g_above
    )


def _prepare(cfg: Config, run_dir: Path, info: distributed.DistInfo, device: torch.device) -> _Run:
    """Load data, build networks and optimisers, seed every random stream."""
    torch.manual_seed(cfg.train.seed + 1_000_003 * info.rank)  # dropout differs per rank
    data = load_data(cfg)
    dtype = resolve_precision(cfg.train.precision, device)
    nets = build_nets(cfg, int(data.voxels.shape[1]), device, info)
    settings = StepSettings(
        crop_px=cfg.data.crop_px,
        feature_layers=tuple(cfg.model.feature_layers),
        device=device,
        dtype=dtype,
        input_dropout=cfg.model.input_dropout,
    )
    from e2e_recon.data.dataset import CropSampler

    grid = None
    if info.is_main and cfg.train.grid_every_iters > 0:
        grid = GridPatterns.from_data(cfg, data)
    return _Run(
        cfg=cfg,
        run_dir=run_dir,
        info=info,
        nets=nets,
        opt=build_optimisers(cfg, nets, device),
        sampler=CropSampler(data, cfg.data.crop_px),
        norm=data.norm.to_dict(),
        settings=settings,
        grid=grid,
        batch_per_rank=distributed.per_rank_batch(cfg.train.batch_size, info),
        sample_generator=torch.Generator().manual_seed(cfg.train.seed * 7919 + info.rank),
    )


def _run_loop(run: _Run) -> dict[str, Any]:
    """Iterate from ``run.iteration`` to ``cfg.train.iters``; return the summary."""
    cfg, start, started = run.cfg, run.iteration, time.perf_counter()
    base_weights, limits = loss_weights(cfg), thresholds(cfg)
    last: dict[str, float] = {}
    log = get_logger()
    if run.info.is_main:
        log.info(
            "training %s on %s (%s), %d process(es), iterations %d -> %d",
            run.run_dir, run.settings.device, _dtype_name(run.settings.dtype),
            run.info.world_size, start, cfg.train.iters,
        )  # fmt: skip
    recorder = Recorder(run.run_dir, cfg.train.iters, start, enabled=run.info.is_main)
    with recorder, _stop_requests() as stop:
        while run.iteration < cfg.train.iters:
            # 1. Sample a batch: this rank's share of the global batch.
            voxels, real = _batch(run)
            # 2. One iteration: D step, then G step.
            weights = weights_at(base_weights, run.iteration, cfg.loss.warmup_iters)
            try:
                terms = training_step(
                    run.nets, run.opt, voxels, real, run.balance, weights, run.settings
                )
            except NonFiniteLoss as exc:
                _fail_non_finite(run, exc.name, exc.value)
            # 3. Balance rule on rank-averaged unweighted losses (also the stop flag).
            last, stopping = _reduce_terms(run, terms, stop.is_set())
            ratio = balance_ratio(last["d_real"], last["d_fake"], last["adversarial"])
            state_used = run.balance
            run.balance = update_balance(run.balance, ratio, limits)
            # 4. Learning-rate schedules advance once per iteration.
            run.opt.generator_schedule.step()
            run.opt.discriminator_schedule.step()
            run.iteration += 1
            # 5. Logging, grids, snapshots.
            row = {**last, "ratio": ratio, "train_d": state_used.train_d}
            _after_iteration(run, recorder, row | {"train_g": state_used.train_g}, stopping)
            if stopping:
                break
    seconds = time.perf_counter() - started
    return _summary(run, start, seconds, last, interrupted=run.iteration < cfg.train.iters)


def _batch(run: _Run) -> tuple[torch.Tensor, torch.Tensor]:
    voxels, real = run.sampler.sample(run.batch_per_rank, run.sample_generator)
    device = run.settings.device
    voxels = voxels.to(device, non_blocking=True)  # (B, V)
    real = real.to(device, non_blocking=True)  # (B, 3, crop, crop)
    if run.cfg.train.channels_last:
        real = real.contiguous(memory_format=torch.channels_last)
    return voxels, real


def _reduce_terms(
    run: _Run, terms: dict[str, torch.Tensor], stop_requested: bool
) -> tuple[dict[str, float], bool]:
    """Average losses (and the stop flag) over ranks; check every value is finite."""
    names = [n for n in _LOGGED if n != "loss_d"]
    local = torch.stack([terms[n].float() for n in names]).tolist()  # one device sync
    values = distributed.mean_across_ranks([*local, float(stop_requested)], run.info)
    out = dict(zip(names, values[:-1], strict=True))
    out["loss_d"] = out["d_real"] + out["d_fake"]
    for name in _LOGGED:
        if not math.isfinite(out[name]):
            _fail_non_finite(run, name, out[name])
    return out, values[-1] > 0


def _after_iteration(run: _Run, recorder: Recorder, row: dict[str, Any], stopping: bool) -> None:
    cfg, it = run.cfg, run.iteration
    done = it >= cfg.train.iters
    if it % max(cfg.train.log_every_iters, 1) == 0 or done or stopping:
        lrs = {"lr_g": run.opt.generator.param_groups[0]["lr"]}
        recorder.log(it, row | lrs)
    else:
        recorder.advance(it)
    if run.grid is not None and (it % cfg.train.grid_every_iters == 0 or done):
        path = run.run_dir / "report" / f"train_grid_iter{it:07d}.png"
        save_grid(path, run.grid.render(run.nets.generator, run.settings.device))
    if it % max(cfg.train.snapshot_every_iters, 1) == 0 or done or stopping:
        saved = _snapshot(run)
        if saved is not None:
            recorder.message(f"snapshot {saved}")


def _snapshot(run: _Run) -> Path | None:
    """Write a snapshot (rank 0); every rank contributes its random states."""
    generators = {"sampler": run.sample_generator}
    rng_by_rank = distributed.gather_objects(ckpt_io.capture_rng(generators), run.info)
    if not run.info.is_main:
        return None
    return ckpt_io.write_snapshot(run.run_dir / "checkpoints", _checkpoint_dict(run, rng_by_rank))


def _checkpoint_dict(run: _Run, rng_by_rank: list[Any]) -> dict[str, Any]:
    nets, opt = run.nets, run.opt
    return {
        "format": ckpt_io.CHECKPOINT_FORMAT,
        "version": ckpt_io.FORMAT_VERSION,
        "iteration": run.iteration,
        "generator": ckpt_io.module_state(nets.generator),
        "generator_arch": nets.generator.arch_kwargs(),  # type: ignore[operator]
        "discriminator": ckpt_io.module_state(nets.discriminator),
        "discriminator_arch": nets.discriminator.arch_kwargs(),  # type: ignore[operator]
        "optimizer_g": opt.generator.state_dict(),
        "optimizer_d": opt.discriminator.state_dict(),
        "schedule_g": ckpt_io.scheduler_state(opt.generator_schedule),
        "schedule_d": ckpt_io.scheduler_state(opt.discriminator_schedule),
        "balance": run.balance.to_dict(),
        "norm": run.norm,
        "rng": rng_by_rank,
        "world_size": run.info.world_size,
        "config": to_dict(run.cfg),
    }


def _restore(run: _Run, path: Path) -> None:
    """Load a snapshot into ``run``; random states last, after anything that draws."""
    ckpt = ckpt_io.load_checkpoint(path)
    nets, opt = run.nets, run.opt
    nets.generator.load_state_dict(ckpt["generator"])
    nets.discriminator.load_state_dict(ckpt["discriminator"])
    opt.generator.load_state_dict(ckpt["optimizer_g"])
    opt.discriminator.load_state_dict(ckpt["optimizer_d"])
    ckpt_io.load_scheduler_state(opt.generator_schedule, ckpt["schedule_g"])
    ckpt_io.load_scheduler_state(opt.discriminator_schedule, ckpt["schedule_d"])
    run.balance = BalanceState.from_dict(ckpt["balance"])
    run.iteration = int(ckpt["iteration"])
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


def _fail_non_finite(run: _Run, name: str, value: float) -> NoReturn:
    """Snapshot the last finite state, then stop with a TrainingError naming the loss.

    Every optimiser step is guarded, so the weights written are finite. The snapshot
    is labelled with the iterations completed; when the generator loss was the
    non-finite one, the discriminator already holds that iteration's step.
    """
    path = _snapshot(run)
    where = f"; the last finite state is in {path}" if path is not None else ""
    raise TrainingError(
        f"{name} became {value} at iteration {run.iteration + 1} (1-based){where}. "
        "Lower train.lr, check the input data for extreme values, or set train.precision=fp32, "
        f"then resume with --resume {run.run_dir}"
    )


def _summary(
    run: _Run, start: int, seconds: float, last: dict[str, float], interrupted: bool
) -> dict[str, Any]:
    generator_path = None
    checkpoint = run.run_dir / "checkpoints" / ckpt_io.LATEST_NAME
    if run.info.is_main and checkpoint.is_file():
        generator_path = ckpt_io.export_generator(checkpoint, run.run_dir / "generator.pt")
    done = run.iteration - start
    return {
        "run_dir": str(run.run_dir),
        "iterations": run.iteration,
        "start_iteration": start,
        "interrupted": interrupted,
        "seconds": round(seconds, 3),
        "it_per_s": done / seconds if seconds > 0 else 0.0,
        "last": last,
        "balance": run.balance.to_dict(),
        "checkpoint": str(checkpoint),
        "generator": str(generator_path) if generator_path else None,
        "device": str(run.settings.device),
        "precision": _dtype_name(run.settings.dtype),
        "world_size": run.info.world_size,
    }


def _dtype_name(dtype: torch.dtype) -> str:
    return "bf16" if dtype == torch.bfloat16 else "fp32"


@contextlib.contextmanager
def _stop_requests() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set a flag that the loop reads at the end of each iteration."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(signum: int, frame: object) -> None:
        if event.is_set():  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        event.set()
        get_logger().warning("stop requested: finishing this iteration and writing a snapshot")

    for sig in previous:
        signal.signal(sig, request_stop)
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
