"""``e2e-recon experiment ...``: the paper's analyses (loss ablations, training-set size)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from e2e_recon.cli_support import ConfigOpt, SetOpt, console, user_errors

__all__ = ["experiment_app"]

experiment_app = typer.Typer(
    help="Run the paper's analyses: loss ablations and training-set size.", no_args_is_help=True
)

SimOpt = Annotated[
    bool, typer.Option(help="Simulate a subject when the config names no training data.")
]
SimPresetOpt = Annotated[
    str, typer.Option(help="Size of the simulated subject: demo, or tiny (seconds).")
]
QuickOpt = Annotated[bool, typer.Option(help="Smoke test: tiny subject, 60 iterations per run.")]
ExperimentSeedOpt = Annotated[int, typer.Option(help="Seed of the subject, trainings, bootstrap.")]
ExperimentRunsOpt = Annotated[Path, typer.Option(help="Parent of the experiment folder.")]


@experiment_app.command("ablation")
@user_errors
def experiment_ablation(
    config: ConfigOpt = "demo",
    set_: SetOpt = None,
    sim: SimOpt = True,
    sim_preset: SimPresetOpt = "demo",
    quick: QuickOpt = False,
    seed: ExperimentSeedOpt = 0,
    runs_dir: ExperimentRunsOpt = Path("runs"),
) -> None:
    """Train with all losses and without each one; one table and one plot.

    Example: [bold]e2e-recon experiment ablation --config demo[/]  (or [bold]--quick[/])
    """
    from e2e_recon.experiments import run_ablation

    path = run_ablation(
        config, set_ or [], runs_dir=runs_dir, sim=sim, seed=seed, sim_preset=sim_preset,
        quick=quick, console=console,
    )  # fmt: skip
    console.print(f"experiment folder: {path}")


@experiment_app.command("train-size")
@user_errors
def experiment_train_size(
    config: ConfigOpt = "demo",
    set_: SetOpt = None,
    sizes: Annotated[
        str, typer.Option(help="Comma-separated numbers of training images (default n/8,n/4,n/2).")
    ] = "",
    sim: SimOpt = True,
    sim_preset: SimPresetOpt = "demo",
    quick: QuickOpt = False,
    seed: ExperimentSeedOpt = 0,
    runs_dir: ExperimentRunsOpt = Path("runs"),
) -> None:
    """Accuracy against the number of training images; one table and one plot.

    Example: [bold]e2e-recon experiment train-size --sizes 100,200,400[/]
    """
    from e2e_recon.errors import ConfigError
    from e2e_recon.experiments import run_train_size

    try:
        numbers = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--sizes {sizes!r}: give whole numbers separated by commas") from None
    path = run_train_size(
        config, set_ or [], sizes=numbers, runs_dir=runs_dir, seed=seed, sim=sim,
        sim_preset=sim_preset, quick=quick, console=console,
    )  # fmt: skip
    console.print(f"experiment folder: {path}")
