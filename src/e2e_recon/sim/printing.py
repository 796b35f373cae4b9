"""What ``e2e-recon simulate`` prints: files written and calibration figures, for one
subject of either simulator family or for every subject of an experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from e2e_recon.console_output import print_table

__all__ = ["print_experiment", "print_summary"]


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    """Print what was written and the calibration figures.

    Parameters
    ----------
    summary : dict
        The return value of :func:`simulate_subject`.
    console : rich Console, optional
    """
    console = console or Console()
    console.print(
        f"[bold]Simulated {summary['subject']}[/] ({summary['preset']} preset, seed "
        f"{summary['seed']}, snr {summary['snr']:g}) -> {summary['out_dir']} "
        f"in {summary['wall_s']:.1f} s"
    )
    sets = Table(title="sessions")
    for column in ("set", "images", "x reps", "samples", "runs", "file"):
        sets.add_column(column)
    for key, info in summary["sets"].items():
        sets.add_row(
            key,
            str(info["images"]),
            str(info["repetitions"]),
            str(info["samples"]),
            str(info["runs"]),
            Path(summary["files"][key]).name,
        )
    print_table(console, sets)
    cal = summary["calibration"]
    rois = Table(title=f"voxels and noise ceiling (test, mean of {cal['noise_ceiling_n_average']})")
    for column in ("ROI", "voxels", "median noise ceiling %", "median reliability r"):
        rois.add_column(column)
    for roi, n in summary["roi_voxels"].items():
        rois.add_row(
            roi,
            str(n),
            f"{cal['noise_ceiling_median_pct'][roi]:.1f}",
            f"{cal['reliability_median'][roi]:.2f}",
        )
    print_table(console, rois)
    quantiles = ", ".join(f"{q}: {v:.2f}" for q, v in cal["reliability_quantiles"].items())
    console.print(f"voxel reliability (split-half r, training set, VC): {quantiles}")
    ridge = cal["ridge"]
    console.print(
        f"ridge pixel decoder, natural test set: pairwise identification "
        f"[bold]{100 * ridge['pairwise_identification']:.1f}%[/] "
        f"({ridge['pixels_px']} px, alpha {ridge['alpha']:.3g})"
    )


def _figures(summary: dict[str, Any]) -> tuple[float, float]:
    """(median VC noise ceiling %, ridge pairwise identification) of either family."""
    if "calibration" in summary:  # the project family: the ceiling per ROI
        ceiling = summary["calibration"]["noise_ceiling_median_pct"]["ROI_VC"]
    else:  # the pRF family: truth-based, VC voxels
        ceiling = summary["median_noise_ceiling_pct"]
    return float(ceiling), float(summary["ridge_pairwise_identification"])


def _sessions_table(summary: dict[str, Any], several: bool) -> Table:
    table = Table(title="sessions (the same for every subject)" if several else "sessions")
    for column in ("set", "images", "x reps", "samples"):
        table.add_column(column)
    for key, info in summary["sets"].items():
        table.add_row(key, str(info["images"]), str(info["repetitions"]), str(info["samples"]))
    return table


def print_experiment(
    summary: dict[str, Any], console: Console | None = None, preset: str | None = None
) -> None:
    """Print the summary returned by :func:`e2e_recon.sim.simulate_subjects`.

    Parameters
    ----------
    summary : dict
        One subject's summary (``--subjects 1``) or an experiment's (``subjects`` key).
    console : rich Console, optional
    preset : str, optional
        The preset's name, for a pRF subject's summary, which does not hold it.
    """
    console = console or Console()
    if "subjects" not in summary and "calibration" in summary:
        print_summary(summary, console)  # one subject of the project family, as always
        return
    subjects = summary.get("subjects") or {summary["subject"]: summary}
    first = next(iter(subjects.values()))
    name = summary.get("preset", preset or first.get("family"))
    console.print(
        f"[bold]Simulated {', '.join(subjects)}[/] ({name} preset, seed {summary['seed']}, "
        f"snr {summary['snr']:g}) -> {summary.get('out_dir', Path(first['images_dir']).parent)}"
        + (f" in {summary['wall_s']:.1f} s" if "wall_s" in summary else "")
    )
    print_table(console, _sessions_table(first, len(subjects) > 1))
    # The areas (ROI_VC is the voxel count; ROI_LVC is V1-V3).
    rois = [r for r in first["roi_voxels"] if r not in ("ROI_VC", "ROI_LVC")] or ["ROI_VC"]
    table = Table(title="subjects: voxels, median VC noise ceiling (test mean), ridge decoder")
    for column in ("subject", "voxels", *rois, "noise ceiling %", "ridge identification %"):
        table.add_column(column)
    for name, info in subjects.items():
        ceiling, ridge = _figures(info)
        counts = [str(info["roi_voxels"][r]) for r in rois]
        table.add_row(name, str(info["n_voxels"]), *counts, f"{ceiling:.1f}", f"{100 * ridge:.1f}")
    print_table(console, table)
    console.print(f"BData files: {Path(first['files']['training']).parent}")
