"""What both experiments share: the experiment folder, its data, and one condition's run.

An experiment lives in one numbered folder ``runs/NNNNN-<subject>-<kind>/`` holding
``base_config.yaml``, the simulated ``subject/`` (when the config names no data),
one run folder per condition (``train`` -> ``reconstruct`` -> ``evaluate``, as in
``e2e-recon demo``), and the results written by :mod:`.results` and :mod:`.plots`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from e2e_recon.config import Config, load_config, save_config, with_overrides
from e2e_recon.errors import ConfigError
from e2e_recon.runs import detach_log_file, get_logger, next_run_dir

#: The demo's shortened training (``e2e-recon demo --quick``), used by ``--quick``.
QUICK_SIM_PRESET = "tiny"


@dataclass(frozen=True)
class Condition:
    """One training of an experiment.

    ``name`` is the sub-folder and the ``condition`` column of ``results.csv``;
    ``overrides`` are applied to the experiment's base config; ``ridge`` marks the
    full-data run that also reconstructs with the ridge baseline (the reference row).
    """

    name: str
    label: str
    overrides: tuple[str, ...] = ()
    ridge: bool = False
    n_train_images: int | None = None


@dataclass
class ConditionResult:
    """What one condition produced: its run folder, training summary and metrics."""

    condition: Condition
    run_dir: Path
    metrics: dict[str, Any]
    train_summary: dict[str, Any]
    seconds: float


@dataclass
class Experiment:
    """An experiment folder with its base config and (when simulated) subject summary."""

    kind: str
    folder: Path
    cfg: Config
    seed: int
    subject: dict[str, Any] | None = None
    started: float = field(default_factory=time.perf_counter)


def start_experiment(
    kind: str,
    config: str,
    overrides: Sequence[str],
    runs_dir: Path,
    seed: int,
    sim: bool,
    sim_preset: str,
    quick: bool,
    progress: bool,
) -> Experiment:
    """Resolve the config, create the numbered folder, simulate a subject when needed.

    The config is validated before the folder is made, so a typo leaves nothing behind.
    ``quick`` applies the demo's short-training overrides before ``overrides`` (which win).
    """
    from e2e_recon.demo import QUICK_OVERRIDES

    head = [f"train.seed={seed}", *(QUICK_OVERRIDES if quick else ())]
    cfg = load_config(config, [*head, *overrides])
    if not cfg.data.train_fmri and not sim:
        raise ConfigError(
            "the config names no training data (data.train_fmri is empty) and --no-sim was "
            "given: set data.train_fmri, data.test_fmri and data.images_dir, or allow --sim"
        )
    if cfg.data.train_fmri and not cfg.data.test_fmri:
        raise ConfigError(
            "data.test_fmri is empty: the experiment evaluates on the test sets, so list the "
            "test BData files (natural, shapes, letters) in data.test_fmri"
        )
    folder = next_run_dir(runs_dir, cfg.data.subject, kind)
    experiment = Experiment(kind, folder, cfg, seed)
    if not cfg.data.train_fmri:
        preset = QUICK_SIM_PRESET if quick and sim_preset == "demo" else sim_preset
        experiment.subject = _simulate(experiment, preset, progress)
    save_config(experiment.cfg, folder / "base_config.yaml")
    return experiment


def _simulate(experiment: Experiment, preset: str, progress: bool) -> dict[str, Any]:
    """Simulate a subject inside the experiment folder and point the config at it."""
    from e2e_recon.sim.subject import simulate_subject

    data = experiment.cfg.data
    summary = simulate_subject(
        experiment.folder / "subject",
        preset=preset,
        subject=data.subject,
        seed=experiment.seed,
        progress=progress,
    )
    files = summary["files"]
    data = dataclasses.replace(
        data,
        train_fmri=files["training"],
        test_fmri=tuple(files[k] for k in ("test", "artificial", "letters")),
        images_dir=summary["images_dir"],
    )
    experiment.cfg = dataclasses.replace(experiment.cfg, data=data)
    return {k: v for k, v in summary.items() if isinstance(v, int | float | str)}


def count_training_images(cfg: Config) -> int:
    """Whole images available for training (all distinct stimuli minus the held-out ones)."""
    from e2e_recon.data.bdata import BData
    from e2e_recon.data.labels import stimulus_ids_of

    n_images = int(np.unique(stimulus_ids_of(BData(cfg.data.train_fmri))).size)
    return n_images - cfg.data.val_images


def evaluation_networks(cfg: Config) -> list[Any]:
    """The feature networks named by ``eval.feature_network``, loaded once per experiment.

    ``efficientnet-lite2`` / ``efficientnet-lite0`` as in ``e2e-recon evaluate``; any
    other comparator kind (``random-caffenet``, or ``caffenet`` / ``alexnet`` with
    ``model.comparator_path``); ``none`` (or empty) for no feature identification.
    """
    from e2e_recon.evaluate.evaluate import KNOWN_FEATURE_NETS, feature_net
    from e2e_recon.nets.loading import load_comparator

    name = cfg.eval.feature_network.strip()
    if name in ("", "none"):
        return []
    label = KNOWN_FEATURE_NETS.get(name, (name, ""))[0]
    needs_path = name in ("caffenet", "alexnet")
    path = (cfg.model.comparator_path or None) if needs_path else None
    return [feature_net(label, load_comparator(path, kind=name))]


def run_condition(
    experiment: Experiment, condition: Condition, nets: list[Any], console: Console
) -> ConditionResult:
    """Train, reconstruct and evaluate one condition in ``experiment.folder / condition.name``.

    Raises
    ------
    KeyboardInterrupt
        Training stopped by Ctrl-C or SIGTERM (its snapshot is kept; later conditions are skipped).
    """
    from e2e_recon.evaluate.evaluate import evaluate_recon
    from e2e_recon.recon.pipeline import reconstruct_run
    from e2e_recon.train.loop import train
    from e2e_recon.train.stopping import StoppedBySignal, signal_exit_code

    start = time.perf_counter()
    cfg = with_overrides(experiment.cfg, condition.overrides)
    cfg = dataclasses.replace(cfg, name=f"{experiment.cfg.name}-{condition.name}")
    run_dir = experiment.folder / condition.name
    try:
        summary = train(cfg, run_dir)
        if summary.get("stop_reason") == "signal":
            raise StoppedBySignal(signal_exit_code(summary))
        recon_dir = reconstruct_run(run_dir, cfg, ridge=condition.ridge)
        metrics = evaluate_recon(
            recon_dir,
            Path(cfg.data.images_dir),
            resolution_px=cfg.eval.resolution_px or None,
            feature_nets=nets,
            n_boot=cfg.eval.bootstrap_samples,
            seed=experiment.seed,
            ci=cfg.eval.ci_level,
            device=cfg.train.device,
        )  # stimuli prepared as the run's geometry.json says
    finally:
        detach_log_file(run_dir / "log.txt")
    seconds = time.perf_counter() - start
    get_logger().info("%s: %s done in %.1f s", experiment.kind, condition.name, seconds)
    console.print(f"{condition.label}: {seconds:.1f} s -> {run_dir}")
    return ConditionResult(condition, run_dir, metrics, summary, seconds)
