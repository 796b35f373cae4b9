"""``e2e-recon experiment train-size``: accuracy against the number of training images.

One training per size N (``data.train_images=N``: N whole images drawn with the seed,
so smaller sets are subsets of larger ones), plus the full-data run, which also
reconstructs with the ridge baseline as the reference line of ``train_size.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from e2e_recon.errors import ConfigError
from e2e_recon.experiments.common import (
    Condition,
    count_training_images,
    evaluation_networks,
    run_condition,
    start_experiment,
)
from e2e_recon.experiments.plots import train_size_png
from e2e_recon.experiments.results import conclude, result_rows

#: Default sizes: the full set halved this many times (1/8, 1/4, 1/2 of the images).
DEFAULT_HALVINGS = 3
MIN_TRAIN_IMAGES = 2


def default_sizes(n_available: int) -> list[int]:
    """A geometric series below ``n_available``: n/8, n/4, n/2 (at least 2 images each)."""
    sizes = {n_available >> k for k in range(DEFAULT_HALVINGS, 0, -1)}
    return sorted(n for n in sizes if MIN_TRAIN_IMAGES <= n < n_available)


def size_conditions(sizes: Sequence[int], n_available: int) -> list[Condition]:
    """One condition per size, smallest first, and the full-data reference run last.

    Raises
    ------
    ConfigError
        A size below 1 or above the number of training images available.
    """
    bad = [n for n in sizes if n < 1 or n > n_available]
    if bad:
        raise ConfigError(
            f"training-set sizes {bad} are outside 1..{n_available} (the training images "
            "available, after data.val_images): choose --sizes within that range"
        )
    subsets = sorted({n for n in sizes if n < n_available})
    conditions = [
        Condition(f"n{n:05d}", f"{n} images", (f"data.train_images={n}",), n_train_images=n)
        for n in subsets
    ]
    full = Condition(
        "all", f"all {n_available} images", ("data.train_images=0",), True, n_available
    )
    return [*conditions, full]


def run_train_size(
    config: str,
    overrides: Sequence[str],
    sizes: Sequence[int] = (),
    runs_dir: Path = Path("runs"),
    seed: int = 0,
    sim: bool = True,
    progress: bool = True,
    sim_preset: str = "demo",
    quick: bool = False,
    console: Console | None = None,
) -> Path:
    """Train, reconstruct and evaluate with growing numbers of training images.

    Parameters
    ----------
    config, overrides, runs_dir, sim, seed, progress, sim_preset, quick, console
        As for :func:`e2e_recon.experiments.run_ablation` (the folder is named
        ``NNNNN-<subject>-train-size``).
    sizes : sequence of int
        Numbers of training images; empty gives :func:`default_sizes`. The full
        training set is always added as the last, reference run.

    Returns
    -------
    Path
        The experiment folder with ``results.csv``, ``results.json``, ``train_size.png``,
        ``base_config.yaml`` and one run folder per size (``n00125``, ..., ``all``).
    """
    console = console or Console()
    experiment = start_experiment(
        "train-size", config, overrides, runs_dir, seed, sim, sim_preset, quick, progress
    )
    n_available = count_training_images(experiment.cfg)
    conditions = size_conditions(list(sizes) or default_sizes(n_available), n_available)
    nets = evaluation_networks(experiment.cfg)
    results = []
    for number, condition in enumerate(conditions, start=1):
        console.rule(f"training-set size {number}/{len(conditions)}: {condition.label}")
        results.append(run_condition(experiment, condition, nets, console))
    rows = result_rows(experiment, results)
    return conclude(experiment, results, rows, ("train_size.png", train_size_png(rows)), console)
