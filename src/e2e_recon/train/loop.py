"""``train(cfg, run_dir)``: the published DeePSiM training procedure, resumable.

The loop around :func:`e2e_recon.train.step.training_step`:

1. sample a batch (z-scored voxels and random crops, one ``torch.Generator``; the
   samples drawn at random or read in one fixed shuffled order, ``data.sampling``);
2. run one iteration (D step, then G step; see ``step.py``);
3. average the unweighted losses over the ranks and apply the balance rule;
4. advance each network's learning-rate schedule when that network stepped;
5. log, draw a grid of current reconstructions, snapshot, as configured.

Ctrl-C (SIGINT) or SIGTERM finishes the current iteration, writes a snapshot and
returns. A non-finite loss writes a snapshot of the last finite state and raises
:class:`~e2e_recon.errors.TrainingError`. ``train(cfg, run_dir, resume=True)``
continues from ``run_dir/checkpoints/latest.pt`` exactly where it stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace as replace_fields
from pathlib import Path
from typing import Any, NoReturn

import torch

from e2e_recon.config import Config, to_dict
from e2e_recon.device import allows_tf32, resolve_device, tf32_mode
from e2e_recon.errors import TrainingError
from e2e_recon.fileio import reporting_write_errors
from e2e_recon.runs import get_logger, init_run_dir
from e2e_recon.train import checkpoint as ckpt_io
from e2e_recon.train import distributed
from e2e_recon.train.balance import balance_ratio, update_balance
from e2e_recon.train.losses import weights_at
from e2e_recon.train.prepare import prepare
from e2e_recon.train.resume import restore, snapshot
from e2e_recon.train.run_state import RunState
from e2e_recon.train.setup import (
    check_supported,
    load_data,
    loss_weights,
    thresholds,
)
from e2e_recon.train.stats import Recorder, save_grid, trim_stats
from e2e_recon.train.step import (
    NonFiniteLoss,
    training_step,
)
from e2e_recon.train.stopping import stop_requests
from e2e_recon.train.term_schedule import LastMeasured, TermSchedule, has_a_term
from e2e_recon.train.validation import (
    write_best,
)

#: Added to the run's seed for the epoch order's own random stream.
_ORDER_SEED = 104_729
_LOGGED = ("loss_g", "loss_d", "image", "feature", "adversarial", "d_real", "d_fake")
__all__ = ["check_supported", "load_data", "loss_weights", "thresholds", "train"]


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
        ``iterations``, ``start_iteration``, ``interrupted`` (``train.iters`` not
        reached), ``stop_reason`` (``done``, ``time_limit``, ``early_stop`` or ``signal``),
        ``stop_signal`` (its number, 0 when none), ``seconds``,
        ``it_per_s``, ``last`` (last unweighted losses), ``balance``,
        ``checkpoint``, ``generator`` (project .pt with ``norm``), ``device``,
        ``precision``, ``precision_choice`` (how ``auto`` decided, with both step
        times when it measured), ``tf32`` (TF32 allowed on a CUDA device), ``world_size``,
        ``run_dir``.

    Raises
    ------
    TrainingError
        A loss became non-finite (a snapshot of the last finite state is written).
    CheckpointError
        ``resume`` without a loadable checkpoint.
    OutputError
        The run folder cannot be written (disk full, read-only): one line naming it.
    """
    check_supported(cfg)
    run_dir = Path(run_dir)
    info, device = distributed.setup(resolve_device(cfg.train.device))
    # precision fp32 is strict float32 (TF32 off on CUDA), as the published models.
    with tf32_mode(allows_tf32(cfg.train.precision)):
        try:
            if info.is_main:
                with reporting_write_errors(run_dir):
                    init_run_dir(run_dir, cfg)
                    ckpt_io.remove_orphaned_temporaries(run_dir, run_dir / "checkpoints")
            distributed.barrier(info)
            run = prepare(cfg, run_dir, info, device)
            with reporting_write_errors(run_dir):  # stats, grids, snapshots, best.pt, log
                if resume:
                    restore(run, ckpt_io.find_resume_checkpoint(run_dir))
                elif info.is_main:
                    trim_stats(run_dir / "stats.jsonl", 0)
                return _run_loop(run)
        finally:
            distributed.teardown()


def _output_generator(run: RunState) -> torch.nn.Module:
    """The generator that leaves training: the averaged one when ``train.ema_decay`` is on."""
    return run.ema.averaged if run.ema is not None else run.nets.generator


def _run_loop(run: RunState) -> dict[str, Any]:
    """Iterate from ``run.iteration`` to ``cfg.train.iters``; return the summary."""
    cfg, start, started = run.cfg, run.iteration, time.perf_counter()
    base_weights, limits = run.weights, thresholds(cfg)
    last: dict[str, float] = {}
    log = get_logger()
    if run.info.is_main:
        log.info(
            "training %s on %s (%s), %d process(es), iterations %d -> %d",
            run.run_dir, run.settings.device, _dtype_name(run.settings.dtype),
            run.info.world_size, start, cfg.train.iters,
        )  # fmt: skip
    recorder = Recorder(run.run_dir, cfg.train.iters, start, enabled=run.info.is_main)
    schedule, measured = TermSchedule.from_config(cfg), LastMeasured()
    skip_adversarial = replace_fields(run.settings, adversarial=False)
    early = out_of_time = False
    with recorder, stop_requests() as stop:
        while run.iteration < cfg.train.iters:
            # 1. Sample a batch: this rank's share of the global batch.
            voxels, real = _batch(run)
            # 2. One iteration: D step, then G step (an adapted run's stage sets its rates).
            if run.adapt is not None:
                run.adapt.apply(run.opt, run.iteration)
            # The adversarial and feature terms may run every k-th iteration only.
            weights = weights_at(base_weights, run.iteration, cfg.loss.warmup_iters)
            weights = schedule.weights(weights, run.iteration)
            adversarial = run.settings.adversarial and schedule.adversarial_due(run.iteration)
            settings = run.settings if adversarial else skip_adversarial
            # With the image loss off, an iteration may have no term due: G does not step.
            used = run.balance
            if not has_a_term(weights):
                used = replace_fields(run.balance, train_g=False)
            try:
                terms = training_step(run.nets, run.opt, voxels, real, used, weights, settings)
            except NonFiniteLoss as exc:
                _fail_non_finite(run, exc.name, exc.value)
            if run.ema is not None:
                run.ema.update(run.nets.generator)
            # 3. Balance rule on rank-averaged unweighted losses (also the stop flag); an
            #    iteration without the adversarial term keeps the state. Terms left out
            #    are logged with their last measured values.
            out_of_time = 0 < cfg.train.max_minutes * 60 < time.perf_counter() - started
            last, stopping = _reduce_terms(run, terms, stop.is_set() or out_of_time)
            feature = schedule.feature_due(run.iteration)
            last = measured.fill(last, adversarial=adversarial, feature=feature)
            ratio = balance_ratio(last["d_real"], last["d_fake"], last["adversarial"])
            state_used = used
            if adversarial or not run.settings.adversarial:
                run.balance = update_balance(run.balance, ratio, limits)
            # 4. Learning-rate schedules: each counts its own network's updates (Caffe
            #    solvers), so a network the balance rule paused keeps its rate.
            trained_d = state_used.train_d and adversarial
            lrs = run.opt.learning_rates()  # the rates this iteration's updates used
            if state_used.train_g:
                run.opt.generator_schedule.step()
            if trained_d:
                run.opt.discriminator_schedule.step()
            run.iteration += 1
            # 5. Logging, grids, snapshots.
            row = {**last, "ratio": ratio, "train_d": trained_d, "train_g": state_used.train_g}
            row |= lrs | _validate(run)
            early = run.early_stopped = _early_stop(run)
            _after_iteration(run, recorder, row, stopping or early)
            if stopping or early:
                break
        reason = _stop_reason(run, early, out_of_time and not stop.is_set())
    seconds = time.perf_counter() - started
    return _summary(run, start, seconds, last) | {"stop_reason": reason, "stop_signal": stop.signum}


def _stop_reason(run: RunState, early: bool, out_of_time: bool) -> str:
    """One of :data:`~e2e_recon.train.stopping.STOP_REASONS` for the loop just ended."""
    if run.iteration >= run.cfg.train.iters:
        return "done"
    if early:
        return "early_stop"
    # Otherwise a stop flag ended the loop: this rank's clock, or a signal (to any rank).
    return "time_limit" if out_of_time else "signal"


def _batch(run: RunState) -> tuple[torch.Tensor, torch.Tensor]:
    rows = None
    if run.order is not None:  # this rank's share of the next samples in the fixed order
        rows = run.order.next_rows(run.batch_per_rank, run.info.rank, run.info.world_size)
    voxels, real = run.sampler.sample(run.batch_per_rank, run.sample_generator, rows)
    device = run.settings.device
    voxels = voxels.to(device, non_blocking=True)  # (B, V)
    real = real.to(device, non_blocking=True)  # (B, 3, crop, crop)
    # The sampler's crops are channels-last already; NCHW when the networks are not.
    memory_format = torch.channels_last if run.cfg.train.channels_last else torch.contiguous_format
    return voxels, real.contiguous(memory_format=memory_format)


def _reduce_terms(
    run: RunState, terms: dict[str, torch.Tensor], stop_requested: bool
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


def _after_iteration(
    run: RunState, recorder: Recorder, row: dict[str, Any], stopping: bool
) -> None:
    cfg, it = run.cfg, run.iteration
    done = it >= cfg.train.iters
    validated = any(k.startswith("val_") for k in row)
    if it % max(cfg.train.log_every_iters, 1) == 0 or done or stopping or validated:
        recorder.log(it, row)
    else:
        recorder.advance(it)
    if run.grid is not None and (it % cfg.train.grid_every_iters == 0 or done):
        path = run.run_dir / "report" / f"train_grid_iter{it:07d}.png"
        save_grid(path, run.grid.render(_output_generator(run), run.settings.device))
    every = cfg.train.snapshot_every_iters  # 0: only the final snapshot (generator.pt's source)
    if (every > 0 and it % every == 0) or done or stopping:
        saved = snapshot(run)
        if saved is not None:
            recorder.message(f"snapshot {saved}")


def _validate(run: RunState) -> dict[str, Any]:
    """Evaluate the validation split when due (rank 0); keep ``best.pt``; ``val_`` values.

    Only at multiples of ``train.val_every_iters`` (not at an interruption), so that an
    interrupted and resumed run validates exactly where an uninterrupted one does.
    """
    every = run.cfg.train.val_every_iters
    if every <= 0 or run.iteration % every != 0 or run.validator is None:
        return {}
    s, generator = run.settings, _output_generator(run)
    values = run.validator.evaluate(generator, run.nets.comparator, s.device, s.dtype)
    metric = values.get(run.cfg.train.best_metric, float("nan"))
    if run.best.update(metric, run.iteration):
        weights = (
            {"generator_ema": run.ema.state_dict()}
            if run.ema is not None
            else {"generator": ckpt_io.module_state(generator)}
        )
        write_best(run.run_dir, weights | {
            "iteration": run.iteration,
            "generator_arch": generator.arch_kwargs(),  # type: ignore[operator]
            "norm": run.norm, "config": to_dict(run.cfg),
        })  # fmt: skip
    out: dict[str, Any] = {f"val_{k}": v for k, v in values.items()}
    out |= {"val_best": run.best.best_value, "val_best_iteration": run.best.best_iteration}
    return out


def _early_stop(run: RunState) -> bool:
    """True on every rank once rank 0 has seen ``patience`` validations without progress."""
    every = run.cfg.train.val_every_iters
    if every <= 0 or run.iteration % every != 0 or run.cfg.train.early_stop_patience <= 0:
        return False
    local = float(run.best.should_stop(run.cfg.train.early_stop_patience))
    stop = distributed.mean_across_ranks([local], run.info)[0] > 0
    if stop and run.info.is_main:
        get_logger().info(
            "early stop at iteration %d: no better validation %s for %d validations "
            "(best %.4g at iteration %d)",
            run.iteration, run.cfg.train.best_metric, run.best.since_best,
            run.best.best_value, run.best.best_iteration,
        )  # fmt: skip
    return stop


def _fail_non_finite(run: RunState, name: str, value: float) -> NoReturn:
    """Snapshot the last finite state, then stop with a TrainingError naming the loss.

    Every optimiser step is guarded, so the weights written are finite. The snapshot
    is labelled with the iterations completed; when the generator loss was the
    non-finite one, the discriminator already holds that iteration's step.
    """
    path = snapshot(run)
    where = f"; the last finite state is in {path}" if path is not None else ""
    raise TrainingError(
        f"{name} became {value} at iteration {run.iteration + 1} (1-based){where}. "
        "Lower train.lr, check the input data for extreme values, or set train.precision=fp32, "
        f"then resume with --resume {run.run_dir}"
    )


def _summary(run: RunState, start: int, seconds: float, last: dict[str, float]) -> dict[str, Any]:
    generator_path = None
    checkpoint = run.run_dir / "checkpoints" / ckpt_io.LATEST_NAME
    if run.info.is_main and checkpoint.is_file():
        generator_path = ckpt_io.export_generator(checkpoint, run.run_dir / "generator.pt")
    done = run.iteration - start
    return {
        "run_dir": str(run.run_dir),
        "iterations": run.iteration,
        "start_iteration": start,
        "interrupted": run.iteration < run.cfg.train.iters,  # for any reason: see stop_reason
        "seconds": round(seconds, 3),
        "it_per_s": done / seconds if seconds > 0 else 0.0,
        "last": last,
        "balance": run.balance.to_dict(),
        "checkpoint": str(checkpoint),
        "generator": str(generator_path) if generator_path else None,
        "best": _best_summary(run),
        "early_stopped": run.early_stopped,
        "device": str(run.settings.device),
        "precision": _dtype_name(run.settings.dtype),
        "precision_choice": run.precision,
        "tf32": run.settings.device.type == "cuda" and allows_tf32(run.cfg.train.precision),
        "world_size": run.info.world_size,
    }


def _best_summary(run: RunState) -> dict[str, Any] | None:
    path = run.run_dir / "best.pt"
    if run.validator is None or not path.is_file():
        return None
    b = run.best
    return {"path": str(path), "metric": run.cfg.train.best_metric, "value": b.best_value,
            "iteration": b.best_iteration, "validations": b.evaluations}  # fmt: skip


def _dtype_name(dtype: torch.dtype) -> str:
    return "bf16" if dtype == torch.bfloat16 else "fp32"
