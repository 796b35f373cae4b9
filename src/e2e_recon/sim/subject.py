"""Write a complete simulated subject in the layout of the real Kamitani data.

``DIR/fmri/<subject>_<session type>_original_VC.h5`` (BData), ``DIR/images/<folder>/
<name>.JPEG`` and ``DIR/truth/`` (noiseless responses, encoding parameters, the feature
model, the summary). The folder is built under a temporary sibling name and renamed
at the end, so an interrupted run never leaves a half-written subject.

:func:`build_subject` writes one subject's files given the stimuli and a
:class:`SubjectDraw`; :mod:`sim.experiment` calls it once per subject of an experiment.
"""

from __future__ import annotations

import csv
import json
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from e2e_recon.data.bdata import BData
from e2e_recon.errors import ConfigError
from e2e_recon.sim import stimuli
from e2e_recon.sim.brain import AREAS, BrainModel, build_brain, roi_masks
from e2e_recon.sim.calibration import calibration_figures
from e2e_recon.sim.cohort import building_folder, check_out_dir, check_snr
from e2e_recon.sim.features import compute_features, describe_features
from e2e_recon.sim.presets import DEFAULT_SNR, SESSIONS, SimPreset, get_preset
from e2e_recon.sim.trials import Schedule, make_schedule, signal_from_drive, simulate_trials

__all__ = [
    "SubjectDraw",
    "build_subject",
    "finalise_paths",
    "fmri_file_name",
    "make_stimuli",
    "simulate_subject",
    "stream_rng",
    "write_truth",
]

#: Column 0 of the two-column ``Label`` block: which session type a sample belongs to.
STIMULUS_TYPE_CODE = {"training": 1, "test": 2, "artificial": 3, "letters": 4}


def fmri_file_name(subject: str, session_part: str) -> str:
    """``sub-01_perceptionNaturalImageTraining_original_VC.h5`` and the like."""
    return f"{subject}_{session_part}_original_VC.h5"


def stream_rng(seed: int, stream: str) -> np.random.Generator:
    """Independent, reproducible random stream per purpose (stable across runs)."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


@dataclass(frozen=True)
class SubjectDraw:
    """What makes one subject of a simulated experiment its own.

    ``stream`` prefixes the names of the subject's brain and noise streams: ``""`` (the
    single-subject simulator's streams) or ``"sub-02/"`` and the like in an experiment of
    several subjects. ``n_voxels`` (None: the preset's) and ``area_shares`` (None: the
    shares of :data:`brain.AREAS`) size the subject's visual cortex.
    """

    name: str
    stream: str = ""
    n_voxels: int | None = None
    area_shares: tuple[float, ...] | None = None


def _check_arguments(out_dir: Path, subject: str, snr: float | None, overwrite: bool) -> None:
    check_snr(snr)
    if not subject or any(c in subject for c in "/\\ "):
        raise ConfigError(f"Subject name {subject!r} must be non-empty, without slashes or spaces.")
    check_out_dir(out_dir, overwrite)


def make_stimuli(spec: SimPreset, seed: int, progress: Progress | None) -> dict:
    """All four stimulus sets, keyed like :data:`SESSIONS`."""
    task = progress.add_task("stimuli", total=4) if progress else None
    size = spec.image_size_px
    sets = {}
    for key in ("training", "test"):
        n = spec.n_training_images if key == "training" else spec.n_test_images
        sets[key] = stimuli.natural_images(key, n, size, stream_rng(seed, f"stimuli/{key}"))
        if progress and task is not None:
            progress.advance(task)
    sets["artificial"] = stimuli.artificial_shapes(size)
    sets["letters"] = stimuli.letters(size)
    if progress and task is not None:
        progress.advance(task, 2)
    return sets


def _encode(sets: dict, context: dict, progress: Progress | None, features: dict | None = None):
    """Brain model and standardised noiseless responses (M, V) of each set.

    ``features`` (per set) are computed here and freed set by set when not given; a
    caller simulating several subjects computes them once and passes them in.
    """
    draw: SubjectDraw = context["draw"]
    label = f"{draw.stream}encoding model"
    task = progress.add_task(label, total=len(sets)) if progress else None
    owned = features is None
    if features is None:
        features = {key: compute_features(s.images) for key, s in sets.items()}
    n_mid = features["training"].mid_level.shape[1]
    n_voxels = draw.n_voxels or context["spec"].n_voxels
    rng = stream_rng(context["seed"], f"{draw.stream}brain")
    brain = build_brain(n_voxels, n_mid, rng, area_shares=draw.area_shares)
    brain.fit_scales(features["training"])
    drive = {}
    for key in sets:
        drive[key] = brain.responses(features.pop(key) if owned else features[key])
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


def _write_session(tmp: Path, key: str, part: str, context: dict) -> dict:
    """Trials, BData file (and, unless already written, image files) of one session type;
    returns its counts. The trial schedule is drawn from a stimulus stream, shared by all
    subjects of an experiment; the noise from the subject's own stream."""
    spec, seed, snr, brain = context["spec"], context["seed"], context["snr"], context["brain"]
    draw: SubjectDraw = context["draw"]
    stim = context["sets"][key]
    n_images, reps = len(stim.ids), spec.repetitions[key]
    schedule = make_schedule(
        n_images, reps, stream_rng(seed, f"schedule/{key}"), spec.runs_per_session
    )
    noise_rng = stream_rng(seed, f"{draw.stream}noise/{key}")
    values = simulate_trials(context["signal"][key], schedule, brain, snr, noise_rng)
    if key in ("training", "test"):
        context["trials"][key] = (values, schedule.image_index)
    bdata = _bdata(values, schedule, stim.ids, key, brain, stim.names)
    del values
    bdata.header.update(simulated="e2e-recon simulate", preset=spec.name, seed=seed, snr=float(snr))
    bdata.save(tmp / "fmri" / fmri_file_name(draw.name, part))
    if context["write_images"]:
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


def write_truth(truth: Path, context: dict, summary: dict) -> None:
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
    with building_folder(out) as tmp:
        with Progress(disable=not progress, transient=True) as bar:
            context = {"spec": spec, "seed": seed, "snr": used_snr}
            context.update(draw=SubjectDraw(subject), write_images=True)
            context["sets"] = make_stimuli(spec, seed, bar)
            summary = build_subject(tmp, context, bar)
        summary.update(snr_is_default=snr is None, wall_s=round(time.perf_counter() - start, 1))
        summary = finalise_paths(summary, out, out / "truth")
        write_truth(tmp / "truth", summary.pop("_context"), summary)
    return summary


def build_subject(tmp: Path, context: dict, bar, features: dict | None = None) -> dict:
    """Encode, write the BData files of one subject under ``tmp``; return its summary.

    ``context`` holds ``spec``, ``seed``, ``snr``, ``draw`` (:class:`SubjectDraw`),
    ``sets`` (the stimuli) and ``write_images``; the brain, responses and trials are
    added. The summary keeps ``context`` under ``"_context"`` for :func:`write_truth`.
    """
    spec, sets, seed, snr = context["spec"], context["sets"], context["seed"], context["snr"]
    subject = context["draw"].name
    brain, drive, signal = _encode(sets, context, bar, features)
    context.update(brain=brain, drive=drive, signal=signal, trials={})
    label = f"{context['draw'].stream}trials and files"
    task = bar.add_task(label, total=len(SESSIONS)) if bar else None
    counts = {}
    for key, part, _ in SESSIONS:
        counts[key] = _write_session(tmp, key, part, context)
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


def finalise_paths(summary: dict, out: Path, truth: Path) -> dict:
    """Record the final paths (the files are still under a temporary name until the rename)."""
    files = {
        key: str(out / "fmri" / fmri_file_name(summary["subject"], part))
        for key, part, _ in SESSIONS
    }
    summary.update(out_dir=str(out), images_dir=str(out / "images"), truth_dir=str(truth))
    summary["files"] = files
    return summary
