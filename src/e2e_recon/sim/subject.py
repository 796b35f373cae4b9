"""Write a complete simulated subject in the layout of the real Kamitani data.

``DIR/fmri/<subject>_<session type>_original_VC.h5`` (BData), ``DIR/images/<folder>/
<name>.JPEG`` and ``DIR/truth/`` (noiseless responses, encoding parameters, the feature
model, the summary). The folder is built under a temporary sibling name and renamed
at the end, so an interrupted run never leaves a half-written subject.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from e2e_recon.console_output import print_table
from e2e_recon.data.bdata import BData
from e2e_recon.errors import ConfigError, DataError
from e2e_recon.sim import stimuli
from e2e_recon.sim.brain import AREAS, BrainModel, build_brain, roi_masks
from e2e_recon.sim.calibration import calibration_figures
from e2e_recon.sim.features import compute_features, describe_features
from e2e_recon.sim.presets import DEFAULT_SNR, SESSIONS, SimPreset, get_preset
from e2e_recon.sim.trials import Schedule, make_schedule, signal_from_drive, simulate_trials

__all__ = ["fmri_file_name", "print_summary", "simulate_subject"]

#: Column 0 of the two-column ``Label`` block: which session type a sample belongs to.
STIMULUS_TYPE_CODE = {"training": 1, "test": 2, "artificial": 3, "letters": 4}


def fmri_file_name(subject: str, session_part: str) -> str:
    """``sub-01_perceptionNaturalImageTraining_original_VC.h5`` and the like."""
    return f"{subject}_{session_part}_original_VC.h5"


def _rng(seed: int, stream: str) -> np.random.Generator:
    """Independent, reproducible random stream per purpose (stable across runs)."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


def _check_arguments(out_dir: Path, subject: str, snr: float | None, overwrite: bool) -> None:
    if snr is not None and not (np.isfinite(snr) and snr > 0):
        raise ConfigError(f"--snr must be a positive number, got {snr!r}.")
    if not subject or any(c in subject for c in "/\\ "):
        raise ConfigError(f"Subject name {subject!r} must be non-empty, without slashes or spaces.")
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir} exists and is not a folder; choose another --out.")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise DataError(
                f"{out_dir} already exists and is not empty; choose another --out or delete it."
            )
        if not (out_dir / "truth" / "summary.json").is_file():  # only a simulated subject
            raise DataError(
                f"{out_dir} is not a simulated subject (no truth/summary.json), so it is never "
                "replaced; choose another --out or delete it by hand."
            )


def _make_stimuli(spec: SimPreset, seed: int, progress: Progress | None) -> dict:
    """All four stimulus sets, keyed like :data:`SESSIONS`."""
    task = progress.add_task("stimuli", total=4) if progress else None
    size = spec.image_size_px
    sets = {}
    for key in ("training", "test"):
        n = spec.n_training_images if key == "training" else spec.n_test_images
        sets[key] = stimuli.natural_images(key, n, size, _rng(seed, f"stimuli/{key}"))
        if progress and task is not None:
            progress.advance(task)
    sets["artificial"] = stimuli.artificial_shapes(size)
    sets["letters"] = stimuli.letters(size)
    if progress and task is not None:
        progress.advance(task, 2)
    return sets


def _encode(sets: dict, spec: SimPreset, seed: int, progress: Progress | None):
    """Brain model and standardised noiseless responses (M, V) of each set."""
    task = progress.add_task("encoding model", total=len(sets)) if progress else None
    features = {key: compute_features(s.images) for key, s in sets.items()}
    n_mid = features["training"].mid_level.shape[1]
    brain = build_brain(spec.n_voxels, n_mid, _rng(seed, "brain"))
    brain.fit_scales(features["training"])
    drive = {}
    for key in sets:
        drive[key] = brain.responses(features.pop(key))
        if progress and task is not None:
            progress.advance(task)
    signal = {key: signal_from_drive(d, drive["training"], brain.area) for key, d in drive.items()}
    return brain, drive, signal


def _bdata(values: np.ndarray, schedule: Schedule, ids: np.ndarray, key: str, brain, names):
    """BData with Session, Run, Label (2 columns: session-type code, stimulus id),
    stimulus_id, then the voxel columns (added last: ``BData.add`` copies the whole
    dataset on each call, and the voxel block is by far the largest)."""
    bdata = BData()
    stim_ids = ids[schedule.image_index]
    bdata.add(schedule.session.astype(float), "Session")
    bdata.add(schedule.run.astype(float), "Run")
    labels = np.stack([np.full(len(stim_ids), STIMULUS_TYPE_CODE[key], float), stim_ids], 1)
    bdata.add(labels, "Label")
    bdata.add(stim_ids, "stimulus_id")
    bdata.add_vmap("stimulus_id", dict(zip(ids.tolist(), names, strict=True)))
    bdata.add(values, "VoxelData")
    for roi, mask in roi_masks(brain).items():
        bdata.add_metadata(roi, mask.astype(float), f"1 = {roi[4:]} voxel", where="VoxelData")
    for axis, column in zip("xyz", brain.xyz_mm.T, strict=True):
        bdata.add_metadata(f"voxel_{axis}", column, f"voxel {axis} coordinate (mm)", "VoxelData")
    return bdata


def _write_session(tmp: Path, key: str, part: str, subject: str, context: dict) -> dict:
    """Trials, BData file and image files of one session type; returns its counts."""
    spec, seed, snr, brain = context["spec"], context["seed"], context["snr"], context["brain"]
    stim = context["sets"][key]
    n_images, reps = len(stim.ids), spec.repetitions[key]
    schedule = make_schedule(n_images, reps, _rng(seed, f"schedule/{key}"), spec.runs_per_session)
    values = simulate_trials(
        context["signal"][key], schedule, brain, snr, _rng(seed, f"noise/{key}")
    )
    if key in ("training", "test"):
        context["trials"][key] = (values, schedule.image_index)
    bdata = _bdata(values, schedule, stim.ids, key, brain, stim.names)
    del values
    bdata.header.update(simulated="e2e-recon simulate", preset=spec.name, seed=seed, snr=float(snr))
    bdata.save(tmp / "fmri" / fmri_file_name(subject, part))
    folder = tmp / "images" / stim.folder
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in zip(stim.names, stim.jpeg, strict=True):
        (folder / f"{name}.JPEG").write_bytes(data)
    return {
        "images": n_images,
        "repetitions": reps,
        "samples": schedule.n_trials,
        "runs": int(schedule.run.max()),
        "sessions": int(schedule.session.max()),
    }


def _write_truth(tmp: Path, context: dict, summary: dict) -> None:
    truth = tmp / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    brain: BrainModel = context["brain"]
    arrays: dict[str, Any] = brain.truth()
    np.savez_compressed(truth / "encoding.npz", **arrays)
    for key, stim in context["sets"].items():
        np.savez_compressed(
            truth / f"noiseless_{key}.npz",
            stimulus_id=stim.ids,
            drive=context["drive"][key],
            signal=context["signal"][key],
        )
    with open(truth / "stimuli.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["set", "stimulus_id", "stimulus_name", "description"])
        for key, stim in context["sets"].items():
            for i, name, what in zip(stim.ids, stim.names, stim.descriptions, strict=True):
                writer.writerow([key, f"{i:.6f}", name, what])
    model = {
        "generator": "e2e-recon simulated subject (sim/ package)",
        "areas": [vars(a) for a in AREAS],
        "features": describe_features(),
        "response": "baseline * (1 + 0.01 * (snr * gain * signal + noise + drift + global))",
        "note": "No network used elsewhere in e2e-recon (CaffeNet, EfficientNet-Lite0/2) "
        "made these data; higher visual cortex uses a seeded random untrained network.",
    }
    (truth / "model.json").write_text(json.dumps(model, indent=2) + "\n")
    (truth / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def simulate_subject(
    out_dir: str | os.PathLike[str],
    preset: str = "demo",
    subject: str = "sub-01",
    seed: int = 0,
    snr: float | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Simulate a subject and write it in the real dataset's layout.

    Parameters
    ----------
    out_dir : path
        Folder to create (must not exist, or be empty, unless ``overwrite``).
    preset : {"tiny", "demo", "paper"}
    subject : str
        Subject name used in file names.
    seed : int
        The same seed gives identical arrays and images.
    snr : float, optional
        Single-trial signal-to-noise ratio; default :data:`presets.DEFAULT_SNR`.
    progress : bool
        Show a progress bar.
    overwrite : bool
        Replace an existing ``out_dir`` that holds a simulated subject (``truth/summary.json``);
        any other non-empty folder is refused.

    Returns
    -------
    dict
        Paths, counts, voxel numbers and calibration figures (also in
        ``truth/summary.json``).
    """
    start = time.perf_counter()
    out = Path(out_dir)
    spec = get_preset(preset)
    _check_arguments(out, subject, snr, overwrite)
    used_snr = float(DEFAULT_SNR if snr is None else snr)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with Progress(disable=not progress, transient=True) as bar:
            summary = _build(tmp, spec, subject, seed, used_snr, bar)
        summary.update(snr_is_default=snr is None, wall_s=round(time.perf_counter() - start, 1))
        summary = _finalise_paths(summary, tmp, out)
        _write_truth(tmp, summary.pop("_context"), summary)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def _build(tmp: Path, spec: SimPreset, subject: str, seed: int, snr: float, bar) -> dict:
    sets = _make_stimuli(spec, seed, bar)
    brain, drive, signal = _encode(sets, spec, seed, bar)
    context = {"spec": spec, "seed": seed, "snr": snr, "brain": brain, "sets": sets}
    context.update(drive=drive, signal=signal, trials={})
    task = bar.add_task("trials and files", total=len(SESSIONS)) if bar else None
    counts = {}
    for key, part, _ in SESSIONS:
        counts[key] = _write_session(tmp, key, part, subject, context)
        if bar and task is not None:
            bar.advance(task)
    masks = roi_masks(brain)
    calibration = calibration_figures(
        context["trials"], {k: sets[k].images for k in ("training", "test")}, masks
    )
    del context["trials"]
    return {
        "subject": subject,
        "preset": spec.name,
        "seed": seed,
        "snr": snr,
        "n_voxels": brain.n_voxels,
        "image_size_px": spec.image_size_px,
        "ridge_pairwise_identification": calibration["ridge"]["pairwise_identification"],
        "roi_voxels": {roi: int(mask.sum()) for roi, mask in masks.items()},
        "sets": counts,
        "calibration": calibration,
        "_context": context,
    }


def _finalise_paths(summary: dict, tmp: Path, out: Path) -> dict:
    """Record the final paths (the files are still under ``tmp`` until the rename)."""
    files = {
        key: str(out / "fmri" / fmri_file_name(summary["subject"], part))
        for key, part, _ in SESSIONS
    }
    summary.update(out_dir=str(out), images_dir=str(out / "images"), truth_dir=str(out / "truth"))
    summary["files"] = files
    return summary


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
