"""What a training run decides before its first iteration: checks, data, loss weights.

Split from ``loop.py`` so that the loop reads as the iteration it runs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from e2e_recon.config import Config
from e2e_recon.data.colour import check_colour, grey_training_set, resolve_colour
from e2e_recon.data.sampler import check_placement
from e2e_recon.errors import ConfigError
from e2e_recon.recon.voxel_selection import check_selection, select_voxels
from e2e_recon.runs import get_logger
from e2e_recon.train.balance import BalanceThresholds
from e2e_recon.train.losses import LossWeights, normalised_weights
from e2e_recon.train.multi_config import check_adapt, check_shared
from e2e_recon.train.priors import check_priors
from e2e_recon.train.sampling import SAMPLING_MODES
from e2e_recon.train.validation import check_best_metric
from e2e_recon.train.values import check_values

#: Below this many training samples ``e2e-recon train`` suggests ``--config small``.
SMALL_DATA_SAMPLES = 3000


def check_supported(cfg: Config, warnings: bool = True) -> None:
    """Refuse settings this trainer cannot run, naming the key and what to set.

    ``warnings=False``: refuse without warning (a first check; training warns).
    """
    t = cfg.train
    check_values(cfg, warnings)
    if t.iters < 1 or t.batch_size < 1:
        raise ConfigError("train.iters and train.batch_size must be at least 1")
    if t.presentation_average_k < 1:
        raise ConfigError(f"train.presentation_average_k={t.presentation_average_k}; use >= 1")
    if not 0.0 <= t.presentation_average_prob <= 1.0:
        raise ConfigError(
            f"train.presentation_average_prob={t.presentation_average_prob}; use 0 to 1"
        )
    for key in ("adversarial_every_iters", "feature_every_iters"):
        if getattr(t, key) < 1:
            raise ConfigError(
                f"train.{key}={getattr(t, key)}; use 1 (every iteration, as published) or "
                "more (the term every k-th iteration)"
            )
    if not 0.0 <= t.ema_decay < 1.0:
        raise ConfigError(
            f"train.ema_decay={t.ema_decay}; use 0 (off) or a decay below 1, e.g. 0.999"
        )
    has_split = cfg.data.val_images > 0 or cfg.data.val_fraction > 0
    if t.early_stop_patience > 0 and t.val_every_iters <= 0 and has_split:
        raise ConfigError(
            "train.early_stop_patience needs validation: set train.val_every_iters (e.g. 100); "
            "or turn early stopping off with train.early_stop_patience=0, or all validation "
            "with data.val_fraction=0 data.val_images=0"
        )
    if t.best_min_delta < 0:
        raise ConfigError(f"train.best_min_delta={t.best_min_delta}; use 0 or a small margin")
    if cfg.data.sampling not in SAMPLING_MODES:
        raise ConfigError(
            f"data.sampling={cfg.data.sampling!r}; use one of {', '.join(SAMPLING_MODES)} "
            "(epoch: one fixed shuffled order, as published; random: drawn with replacement)"
        )
    check_placement(cfg.data.placement)
    if not 0.0 <= cfg.data.val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction={cfg.data.val_fraction}; use 0 <= fraction < 1")
    if not 0.0 <= cfg.model.input_dropout < 1.0:
        raise ConfigError(f"model.input_dropout={cfg.model.input_dropout}; use 0 <= p < 1")
    check_best_metric(t.best_metric)
    check_priors(cfg)
    check_colour(cfg.data.colour)
    check_selection(cfg.data.voxel_selection, cfg.data.voxel_fraction)
    check_shared(cfg)
    check_adapt(cfg)


def val_image_count(cfg: Config) -> int:
    """``data.val_images``, or ``data.val_fraction`` of the training file's images."""
    d = cfg.data
    if d.val_images or d.val_fraction <= 0.0:
        return d.val_images
    from e2e_recon.data.bdata import BData
    from e2e_recon.data.labels import stimulus_ids_of

    n_images = np.unique(stimulus_ids_of(BData(d.train_fmri))).size
    return max(2, round(d.val_fraction * n_images))


def load_data(cfg: Config) -> Any:
    """The training set of ``cfg.data`` (a ``data.dataset.TrainingSet``)."""
    from e2e_recon.data.dataset import load_training_set

    d = cfg.data
    if not d.train_fmri or not d.images_dir:
        raise ConfigError(
            "training needs data.train_fmri (a BData .h5) and data.images_dir (the stimulus "
            "images): pass --train-fmri and --images, or set them in the config"
        )
    training = load_training_set(
        d.train_fmri,
        d.images_dir,
        roi=d.roi,
        image_size_px=d.image_size_px,
        cache_dir=d.cache_dir or None,
        train_images=d.train_images,
        val_images=val_image_count(cfg),
        seed=cfg.train.seed,
        drop_nonfinite=d.drop_nonfinite_voxels,
    )
    # Grey targets: luminance in three equal channels (greyscale stimuli already are).
    training = grey_training_set(training) if d.colour == "grey" else training
    if d.voxel_selection == "all":
        return training
    training, note = select_voxels(training, d.crop_px, d.voxel_fraction, cfg.train.seed)
    get_logger().info("%s: %s", d.train_fmri, note)
    return training


def resolve_run_colour(cfg: Config, training: Any) -> tuple[Config, str | None]:
    """``cfg`` with ``data.colour: auto`` replaced by the mode of the training stimuli.

    Returns the config (unchanged unless ``auto`` was resolved) and a one-line note.
    """
    val_images = training.val.images if training.val is not None else None
    mode, note = resolve_colour(cfg.data.colour, training.images, val_images)
    if mode == cfg.data.colour:
        return cfg, note
    return replace(cfg, data=replace(cfg.data, colour=mode)), note


def small_data_advice(cfg: Config, n_samples: int) -> str | None:
    """A suggestion to use ``--config small`` for a small training set under the paper preset."""
    if cfg.name != "paper" or n_samples >= SMALL_DATA_SAMPLES:
        return None
    return (
        f"the training set has {n_samples} samples (< {SMALL_DATA_SAMPLES}); the paper preset "
        "was made for 6,000 samples and overfits small, noisy data. Consider --config small "
        "(validation split, early stopping, presentation averaging, regularisation; see README)"
    )


def loss_weights(cfg: Config) -> LossWeights:
    """The configured loss weights (as written; see :func:`effective_weights`)."""
    loss = cfg.loss
    if loss.image_weight == loss.feature_weight == loss.adversarial_weight == 0:
        raise ConfigError(
            "loss.image_weight, loss.feature_weight and loss.adversarial_weight are all 0: "
            "the generator would learn nothing; keep at least one above 0"
        )
    return LossWeights(loss.image_weight, loss.feature_weight, loss.adversarial_weight)


def effective_weights(cfg: Config, image_at_mean: float, feature_at_mean: float) -> LossWeights:
    """Absolute loss weights for the run (normalised when ``loss.weighting: mean_image``)."""
    base = loss_weights(cfg)
    if cfg.loss.weighting == "mean_image":
        return normalised_weights(base, image_at_mean, feature_at_mean)
    return base


def thresholds(cfg: Config) -> BalanceThresholds:
    """The configured balance-rule thresholds."""
    t = cfg.train
    return BalanceThresholds(
        t.balance_stop_d_below, t.balance_resume_d_above, t.balance_stop_g_above
    )
