"""The demo: the whole method end to end on a simulated subject.

simulate -> train -> reconstruct (end-to-end and ridge) -> evaluate -> report,
with no input and no network. ``--quick`` runs the same path at the ``tiny``
preset in about a minute, for smoke tests.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from e2e_recon.config import Config, load_config
from e2e_recon.console_output import print_table
from e2e_recon.errors import ConfigError
from e2e_recon.fileio import atomic_write_json
from e2e_recon.runs import get_logger, init_run_dir, next_run_dir

QUICK_OVERRIDES = (
    "train.iters=60",
    "train.batch_size=16",
    "train.lr_halve_at_iters=[]",
    "train.snapshot_every_iters=30",
    "train.log_every_iters=10",
    "train.grid_every_iters=30",
    "eval.bootstrap_samples=200",
)
SUMMARY_SCHEMA_VERSION = 1


def demo_config(
    run_dir: Path, quick: bool, seed: int, comparator: str | None, device: str
) -> tuple[Config, str]:
    """The demo's config and the simulated-subject preset it trains on."""
    preset = "tiny" if quick else "demo"
    data = run_dir / "subject"
    train_file = data / "fmri" / "sub-01_perceptionNaturalImageTraining_original_VC.h5"
    overrides = [
        f"data.train_fmri='{train_file}'",
        f"data.images_dir='{data / 'images'}'",
        f"train.seed={seed}",
        f"train.device={device}",
        *(QUICK_OVERRIDES if quick else ()),
    ]
    if comparator:
        kind = "alexnet" if comparator.endswith(".pth") else "caffenet"
        overrides += [f"model.comparator={kind}", f"model.comparator_path='{comparator}'"]
        overrides.append("model.feature_layers=[pool5]" if kind == "caffenet" else "")
    return load_config("demo", [o for o in overrides if o]), preset


def run_demo(
    out: Path | None = None,
    quick: bool = False,
    seed: int = 0,
    comparator: str | None = None,
    device: str = "auto",
    console: Console | None = None,
) -> dict[str, Any]:
    """Run the demo and return the content of ``summary.json``.

    Parameters
    ----------
    out : Path, optional
        Run folder (default: the next numbered folder under ``runs/``).
    quick : bool
        Tiny subject and a few dozen iterations: a smoke test of every stage.
    seed : int
        One seed for the subject and the training.
    comparator : str, optional
        A CaffeNet ``.caffemodel`` or torchvision AlexNet ``.pth`` to use instead of
        the default offline comparator (EfficientNet-Lite0 with ImageNet weights).
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``mps``.
    """
    from e2e_recon.evaluate.evaluate import evaluate_recon
    from e2e_recon.recon.pipeline import reconstruct_run
    from e2e_recon.report.report import write_report
    from e2e_recon.sim.subject import simulate_subject
    from e2e_recon.train.loop import train
    from e2e_recon.train.stopping import StoppedBySignal, signal_exit_code

    console = console or Console()
    start = time.perf_counter()
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        # Never among the user's files, nor over an earlier run (its config and log).
        raise ConfigError(f"--out {out} is not an empty folder; give a new or empty one")
    run_dir = out or next_run_dir(Path("runs"), "sim", "demo-quick" if quick else "demo")
    cfg, preset = demo_config(run_dir, quick, seed, comparator, device)
    init_run_dir(run_dir, cfg)
    log = get_logger()

    console.rule(f"1/5 simulate a subject ({preset} preset)")
    subject = simulate_subject(run_dir / "subject", preset=preset, seed=seed)
    test_files = sorted(str(p) for p in (run_dir / "subject" / "fmri").glob("*Test*.h5"))
    test_files += sorted(
        str(p)
        for p in (run_dir / "subject" / "fmri").glob("*.h5")
        if "Training" not in p.name and "Test" not in p.name
    )
    cfg = load_config(run_dir / "config.yaml", [f"data.test_fmri={json.dumps(test_files)}"])
    init_run_dir(run_dir, cfg)

    console.rule("2/5 train the end-to-end generator")
    train_summary = train(cfg, run_dir)
    if train_summary["stop_reason"] == "signal":  # not on to reconstruct a half-trained model
        raise StoppedBySignal(signal_exit_code(train_summary))

    console.rule("3/5 reconstruct the test sets (end-to-end and ridge baseline)")
    recon_dir = reconstruct_run(run_dir, cfg, ridge=True)

    console.rule("4/5 evaluate")
    metrics = evaluate_recon(
        recon_dir,
        Path(cfg.data.images_dir),
        resolution_px=cfg.eval.resolution_px,
        n_boot=cfg.eval.bootstrap_samples,
        seed=seed,
    )  # stimuli prepared as the run's geometry.json says (written by reconstruct_run)

    console.rule("5/5 report")
    report_path = run_dir / "report" / "index.html"
    summary = demo_summary(cfg, metrics, subject, train_summary, seed, start, report_path)
    atomic_write_json(run_dir / "summary.json", summary)  # first: the report shows it
    write_report(run_dir, report_path)
    log.info("demo finished in %.1f s", summary["wall_s"])
    print_table(console, summary_table(summary))
    console.print(f"report: {report_path}")
    console.print(f"summary: {run_dir / 'summary.json'}")
    return summary


def demo_summary(
    cfg: Config,
    metrics: dict[str, Any],
    subject: dict[str, Any],
    train_summary: dict[str, Any],
    seed: int,
    start: float,
    report_path: Path,
) -> dict[str, Any]:
    """The content of ``summary.json`` (schema in docs/demo.md)."""
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "sets": sets_summary(metrics),
        "paired": paired_summary(metrics),
        "comparator": {
            "kind": cfg.model.comparator,
            "weights": comparator_weights_label(cfg),
            "layers": list(cfg.model.feature_layers),
        },
        "evaluation_networks": [n.get("weights", "") for n in metrics.get("feature_networks", [])],
        "seed": seed,
        "wall_s": round(time.perf_counter() - start, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "subject": {k: v for k, v in subject.items() if isinstance(v, int | float | str)},
        "train": {k: v for k, v in train_summary.items() if isinstance(v, int | float | str)},
        "report": str(report_path),
    }


def comparator_weights_label(cfg: Config) -> str:
    """The comparator's own description of its weights (random weights say so)."""
    from e2e_recon.nets.loading import load_comparator

    path = cfg.model.comparator_path or None
    return str(load_comparator(path, kind=cfg.model.comparator).weights_label)


def sets_summary(metrics: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{set: {method: {metric: {mean, ci_low, ci_high}}}}`` from ``metrics.json``.

    Pixel identification at native size is ``pixel_identification``; feature
    identification in each evaluation network's layers is grouped under
    ``feature_identification``.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for row in metrics.get("results", []):
        scores = {"n_images": row.get("n_images"), **_grouped_scores(row["scores"])}
        out.setdefault(row["set"], {})[row["method"]] = scores
    return out


def paired_summary(metrics: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{set: {"e2e - ridge": {metric: paired difference}}}`` from ``metrics.json``.

    Metric names as in :func:`sets_summary`; each value holds the mean per-image
    difference, its paired bootstrap interval, ``wins`` and ``excludes_zero``.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for row in metrics.get("comparisons", []):
        title = f"{row['method']} - {row['baseline']}"
        out.setdefault(row["set"], {})[title] = _grouped_scores(row["scores"])
    return out


def _grouped_scores(raw: dict[str, Any]) -> dict[str, Any]:
    """Scores under summary names, feature identification grouped under one key."""
    scores: dict[str, Any] = {}
    features: dict[str, Any] = {}
    for key, value in raw.items():
        if "/" in key:
            features[key] = value
        else:
            scores[_summary_key(key)] = value
    scores["feature_identification"] = features
    return scores


def _summary_key(key: str) -> str:
    if key == "pixid":
        return "pixel_identification"
    if key.startswith("pixid_"):
        return "pixel_identification_" + key.removeprefix("pixid_")
    return key


def summary_table(summary: dict[str, Any]) -> Table:
    """Terminal table: set x method x metric, mean with its interval."""
    table = Table(
        title="Demo summary (mean [95% interval]; chance 0.50 for identification; "
        '"e2e - ridge": paired per-image difference, bold where its interval excludes 0)'
    )
    for column in ("set", "method", "pixel ident.", "PixCorr", "SSIM", "feature ident."):
        table.add_column(column)
    for set_name, methods in summary["sets"].items():
        paired = summary.get("paired", {}).get(set_name, {})
        for method, scores in {**methods, **paired}.items():
            features = scores.get("feature_identification", {})
            table.add_row(
                set_name,
                method,
                _cell(scores.get("pixel_identification")),
                _cell(scores.get("pixcorr")),
                _cell(scores.get("ssim")),
                " ".join(_cell(v) for v in features.values()),
            )
    return table


def _cell(value: dict[str, Any] | None) -> str:
    if not value or value.get("mean") is None:
        return "-"
    paired = "wins" in value  # a paired difference: signed, bold where it excludes 0
    number = f"{value['mean']:+.2f}" if paired else f"{value['mean']:.2f}"
    if value.get("ci_low") is not None:
        sign = "+" if paired else ""
        number += f" [{value['ci_low']:{sign}.2f}, {value['ci_high']:{sign}.2f}]"
    return f"[bold]{number}[/]" if paired and value.get("excludes_zero") else number


def _peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux and bytes on macOS.
    scale = 1.0 if os.uname().sysname == "Darwin" else 1024.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    return peak / 1e6
