"""``e2e-recon experiment ablation``: all losses, and without each one (Shen et al. 2019).

Four trainings with the same data, seed and settings: all losses; no feature loss
(``loss.feature_weight=0``); no adversarial loss (``loss.adversarial_weight=0``); no
image loss (``loss.image_weight=0``). The all-losses run also reconstructs with the
ridge baseline, so the table and ``ablation.png`` show both beside chance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from e2e_recon.experiments.common import (
    Condition,
    evaluation_networks,
    run_condition,
    start_experiment,
)
from e2e_recon.experiments.plots import ablation_png
from e2e_recon.experiments.results import conclude, result_rows

ABLATION_CONDITIONS: tuple[Condition, ...] = (
    Condition("all", "all losses", ridge=True),
    Condition("no-feature", "no feature loss", ("loss.feature_weight=0",)),
    Condition("no-adversarial", "no adversarial loss", ("loss.adversarial_weight=0",)),
    Condition("no-image", "no image loss", ("loss.image_weight=0",)),
)


def run_ablation(
    config: str,
    overrides: Sequence[str],
    runs_dir: Path = Path("runs"),
    sim: bool = True,
    seed: int = 0,
    progress: bool = True,
    sim_preset: str = "demo",
    quick: bool = False,
    console: Console | None = None,
) -> Path:
    """Train, reconstruct and evaluate with all losses and without each one.

    Parameters
    ----------
    config : str
        Preset name or YAML file (as for ``e2e-recon train``).
    overrides : sequence of str
        ``section.key=value`` items applied to every condition.
    runs_dir : Path
        Parent of the numbered experiment folder ``NNNNN-<subject>-ablation``.
    sim : bool
        When the config names no training data (``data.train_fmri`` empty), simulate
        a subject inside the experiment folder; with ``sim=False`` that is an error.
    seed : int
        Seed of the simulated subject, of every training (``train.seed``, unless an
        override sets it) and of the bootstrap.
    progress : bool
        Show the simulation's progress bar.
    sim_preset : str
        Size of the simulated subject: ``demo`` (default) or ``tiny`` (seconds).
    quick : bool
        The demo's ``--quick`` settings: tiny subject, 60 iterations, 200 bootstrap samples.
    console : rich Console, optional
        Where the progress lines and the results table go.

    Returns
    -------
    Path
        The experiment folder, holding ``results.csv``, ``results.json``, ``ablation.png``,
        ``base_config.yaml`` and one run folder per condition (``all``, ``no-feature``,
        ``no-adversarial``, ``no-image``).
    """
    console = console or Console()
    experiment = start_experiment(
        "ablation", config, overrides, runs_dir, seed, sim, sim_preset, quick, progress
    )
    nets = evaluation_networks(experiment.cfg)
    results = []
    for number, condition in enumerate(ABLATION_CONDITIONS, start=1):
        console.rule(f"ablation {number}/{len(ABLATION_CONDITIONS)}: {condition.label}")
        results.append(run_condition(experiment, condition, nets, console))
    rows = result_rows(experiment, results)
    png = ablation_png(rows, [(c.name, c.label) for c in ABLATION_CONDITIONS])
    return conclude(experiment, results, rows, ("ablation.png", png), console)
