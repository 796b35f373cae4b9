"""Everything a training process holds before its first iteration (:func:`prepare`).

One subject (the published procedure), several subjects (``model.shared``, see
``train/shared.py``) or a new subject adapted from a source generator
(``train.adapt_from``, see ``train/adapt.py``): the data, the networks and their
first layer, the sampler, the validator, the optimisers and every random stream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from e2e_recon.config import Config, save_config
from e2e_recon.data.home import subject_in_file_name
from e2e_recon.data.sampler import choose_data_device, training_set_bytes
from e2e_recon.fileio import reporting_write_errors
from e2e_recon.runs import get_logger
from e2e_recon.train import distributed
from e2e_recon.train.adapt import AdaptStages, adapted_config, init_adapted, read_source
from e2e_recon.train.ema import GeneratorEMA
from e2e_recon.train.losses import LossWeights
from e2e_recon.train.precision_probe import choose_run_precision
from e2e_recon.train.priors import init_first_layer, mean_image_terms
from e2e_recon.train.run_state import RunState
from e2e_recon.train.sampling import EpochOrder, make_sampler
from e2e_recon.train.setup import (
    effective_weights,
    load_data,
    loss_weights,
    resolve_run_colour,
    small_data_advice,
)
from e2e_recon.train.shared import (
    SharedData,
    SharedValidator,
    SubjectMixSampler,
    init_shared_first_layer,
    load_shared_data,
    shared_grid,
)
from e2e_recon.train.stats import GridPatterns
from e2e_recon.train.step import Nets, StepSettings, build_nets, build_optimisers, uses_adversarial
from e2e_recon.train.validation import BEST_METRICS, BestTracker, Validator, validation_plan

#: Added to the run's seed for the epoch order's own random stream.
ORDER_SEED = 104_729


def prepare(
    cfg: Config, run_dir: Path, info: distributed.DistInfo, device: torch.device
) -> RunState:
    """Load data, build networks and optimisers, seed every random stream."""
    torch.manual_seed(cfg.train.seed + 1_000_003 * info.rank)  # dropout differs per rank
    log = get_logger()
    given = cfg
    source = read_source(cfg.train.adapt_from) if cfg.train.adapt_from else None
    if source is not None:  # the architecture, colour and image geometry are the source's
        cfg = adapted_config(cfg, source)
    shared = load_shared_data(cfg) if cfg.model.shared else None
    data = shared.sets[0] if shared is not None else load_data(cfg)
    resolved, colour_note = resolve_run_colour(cfg, data)
    if colour_note and info.is_main:
        log.info(colour_note)
    if resolved != given and info.is_main:
        with reporting_write_errors(run_dir):  # as trained, read by later stages
            save_config(resolved, run_dir / "config.yaml")
    cfg = resolved
    advice = small_data_advice(cfg, shared.n_samples if shared else len(data.voxels))
    if advice and info.is_main:
        log.warning(advice)
    n_voxels, subjects = _generator_inputs(cfg, data, shared, source is not None)
    nets = build_nets(cfg, n_voxels, device, info, subjects)
    if source is not None:
        note = init_adapted(nets.generator, source, data, cfg)
    elif shared is not None:
        note = _rows_note(cfg, init_shared_first_layer(
            nets.generator, shared, cfg.model.first_layer_init, cfg.data.crop_px))  # fmt: skip
    else:
        note = _rows_note(cfg, init_first_layer(
            nets.generator, data, cfg.model.first_layer_init, cfg.data.crop_px))  # fmt: skip
    if note and info.is_main:
        log.info(note)
    batch_per_rank = distributed.per_rank_batch(cfg.train.batch_size, info)
    # auto times this run's own step in fp32 and bf16 (on copies, RNG untouched).
    precision = choose_run_precision(cfg, nets, batch_per_rank, device, info)
    if info.is_main:
        log.info(precision.describe())
    dtype = precision.dtype
    layers = tuple(cfg.model.feature_layers)
    settings = StepSettings(
        cfg.data.crop_px, layers, device, dtype, cfg.model.input_dropout,
        adversarial=uses_adversarial(cfg),
    )  # fmt: skip
    t = cfg.train
    # The training set on the training device when it fits there (batches are cut there).
    sets = shared.sets if shared is not None else [data]
    data_bytes = sum(training_set_bytes(s) for s in sets)
    data_device, where = choose_data_device(data_bytes, device, cfg.data.placement)
    if info.is_main:
        log.info(where)
    samplers = [
        make_sampler(s, cfg.data.crop_px, t.presentation_average_k, t.presentation_average_prob,
                     data_device)
        for s in sets
    ]  # fmt: skip
    sampler = SubjectMixSampler(samplers, shared, t.subject_mix) if shared else samplers[0]
    opt = build_optimisers(cfg, nets, device)
    return RunState(
        cfg=cfg,
        run_dir=run_dir,
        info=info,
        nets=nets,
        opt=opt,
        sampler=sampler,
        norm=shared.norm() if shared is not None else data.norm.to_dict(),
        settings=settings,
        grid=_grid(cfg, data, shared) if info.is_main and t.grid_every_iters > 0 else None,
        batch_per_rank=batch_per_rank,
        sample_generator=torch.Generator().manual_seed(t.seed * 7919 + info.rank),
        weights=run_weights(cfg, data, nets, settings, info),
        validator=_validator(cfg, data, shared, info),
        order=epoch_order(cfg, len(sampler)),
        ema=GeneratorEMA(nets.generator, t.ema_decay) if t.ema_decay and info.is_main else None,
        best=BestTracker(higher_is_better=BEST_METRICS[t.best_metric], min_delta=t.best_min_delta),
        adapt=AdaptStages(cfg) if source is not None else None,
        precision=precision.to_dict(),
    )


def _generator_inputs(
    cfg: Config, data: Any, shared: SharedData | None, adapting: bool
) -> tuple[int, dict[str, int] | None]:
    """``n_voxels`` and the subjects of the generator (None: the one-subject generator).

    An adapted generator names its one subject (from the file name or ``data.subject``),
    so that its file says whose input layer it holds.
    """
    if shared is not None:
        counts = dict(zip(shared.subjects, shared.voxel_counts, strict=True))
        return sum(counts.values()), counts
    n_voxels = int(data.voxels.shape[1])
    if not adapting:
        return n_voxels, None
    d = cfg.data
    name = d.subjects[0] if d.subjects else subject_in_file_name(d.train_fmri) or d.subject
    return n_voxels, {name: n_voxels}


def _rows_note(cfg: Config, rows: int) -> str:
    return f"first layer: {rows} rows from {cfg.model.first_layer_init}" if rows else ""


def _grid(cfg: Config, data: Any, shared: SharedData | None) -> GridPatterns:
    return shared_grid(cfg, shared) if shared is not None else GridPatterns.from_data(cfg, data)


def _validator(
    cfg: Config, data: Any, shared: SharedData | None, info: distributed.DistInfo
) -> Validator | SharedValidator | None:
    """The validation split(s), on rank 0 when this run validates."""
    validating, notes = validation_plan(cfg, data.val)
    if info.is_main:
        for note in notes:
            get_logger().warning(note)
    if not info.is_main or not validating:
        return None
    layers = tuple(cfg.model.feature_layers)
    if shared is not None:
        validator = SharedValidator(shared, cfg.data.crop_px, layers)
        return validator if validator.validators else None
    return Validator(data.val, cfg.data.crop_px, layers)


def epoch_order(cfg: Config, n_samples: int) -> EpochOrder | None:
    """The fixed shuffled order of ``data.sampling: epoch`` (None for ``random``)."""
    if cfg.data.sampling != "epoch":
        return None
    return EpochOrder(n_samples, ORDER_SEED + cfg.train.seed)


def run_weights(
    cfg: Config, data: Any, nets: Nets, settings: StepSettings, info: distributed.DistInfo
) -> LossWeights:
    """The absolute loss weights; ``mean_image`` weighting measures the mean image first."""
    if cfg.loss.weighting == "absolute":
        return loss_weights(cfg)
    comparator = nets.comparator if cfg.loss.feature_weight != 0.0 else None
    terms = mean_image_terms(
        data.images, cfg.data.crop_px, comparator, settings.feature_layers, settings.device,
        settings.dtype,
    )  # fmt: skip
    weights = effective_weights(cfg, *terms)
    if info.is_main:
        get_logger().info(
            "loss weights normalised by the mean image (image %.4g, feature %.4g): "
            "image %.3g, feature %.3g, adversarial %.3g",
            *terms, weights.image, weights.feature, weights.adversarial,
        )  # fmt: skip
    return weights
