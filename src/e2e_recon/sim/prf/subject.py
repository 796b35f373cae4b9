"""Write subjects of the pRF simulator family in the layout of the real Kamitani data.

Stimuli (``family``, :mod:`.stimuli`): ``mixed`` are colour shapes, gratings, Gabor-like
blobs, checkerboards and plaids (RGB PNG); ``digits`` are digits drawn from stroke
skeletons with jittered position, size, rotation, slant and thickness, light on dark
(greyscale PNG).

Encoding model (:mod:`.brain`): Gaussian population receptive fields, growing with
eccentricity and visual area, over luminance, R-G, B-Y and oriented contrast-energy
maps; a compressive nonlinearity (signed power 0.5) on the summed drive; per-voxel gain
and offset. Trial noise is Gaussian, partly shared across voxels (low rank), with
single-trial ``snr`` = signal SD / noise SD for a voxel of gain 1. About 5% of the
voxels lie outside visual cortex (``ROI_VC`` = 0) and carry noise only.

Files: ``fmri/<subject>_perceptionNaturalImage{Training,Test}_original_VC.h5`` (BData
written by :mod:`.files`; the stimulus id is in column 1 of ``Label``, there is no
``stimulus_id`` key), ``images/{training,test}/<name>.png`` and ``truth/``.
Stimulus ids follow the lab's float scheme ``SYNSET.NNNNNN`` with made-up synsets:
``9100001``-``9100005`` for the five colour kinds, ``9200000 + d`` for digit ``d``;
the image number runs over training then test images, so ``9200006.000017`` is the
image ``n09200006_17.png`` (a 6).

This family shares no code with the project simulator (see :mod:`e2e_recon.sim.prf`).
"""

from __future__ import annotations

import json
import os
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from rich.progress import Progress

from e2e_recon.errors import ConfigError
from e2e_recon.sim.cohort import (
    building_folder,
    check_out_dir,
    experiment_summary,
    subject_names,
    subject_stream,
    voxel_count,
)
from e2e_recon.sim.prf import brain as encoding
from e2e_recon.sim.prf import stimuli
from e2e_recon.sim.prf.calibration import calibrate, noise_ceiling
from e2e_recon.sim.prf.files import FILE_PART, schedule, stimulus_name, write_bdata
from e2e_recon.sim.prf.presets import DEFAULT_SNR, PRESETS, SHARED_NOISE

__all__ = ["DEFAULT_SNR", "PRESETS", "simulate_prf_subject", "simulate_prf_subjects"]

SIMULATOR = "e2e_recon.sim.prf"
FAMILIES = ("mixed", "digits")


def _rng(seed: int, stream: str) -> np.random.Generator:
    """A reproducible random stream per purpose, so changing one part leaves the others."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


def _check(spec: dict[str, Any]) -> None:
    if not (np.isfinite(spec["snr"]) and spec["snr"] > 0):
        raise ConfigError(f"snr must be a positive number, got {spec['snr']!r}.")
    if not 0 <= spec["shared_noise"] < 1:
        raise ConfigError(f"shared_noise must be in [0, 1), got {spec['shared_noise']!r}.")
    counts = ("n_train", "train_presentations", "n_test", "test_presentations", "n_voxels")
    if min(spec[k] for k in counts) < 1:
        raise ConfigError("counts (images, presentations, voxels) must be at least 1.")
    if spec["family"] not in FAMILIES:
        raise ConfigError(f"family must be one of {', '.join(FAMILIES)}, got {spec['family']!r}.")


def simulate_prf_subject(
    out_dir: str | os.PathLike[str],
    *,
    family: str = "mixed",
    n_train: int = 800,
    train_presentations: int = 2,
    n_test: int = 40,
    test_presentations: int = 10,
    image_size_px: int = 64,
    snr: float = DEFAULT_SNR,
    seed: int = 0,
    n_voxels: int = 3000,
    shared_noise: float = SHARED_NOISE,
    subject: str = "sub-01",
    progress: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write a simulated subject (BData files, images, truth) and return its summary.

    Parameters
    ----------
    out_dir : folder to create; it must not exist or be empty.
    family : ``"mixed"`` (colour) or ``"digits"`` (greyscale).
    n_train, train_presentations, n_test, test_presentations : counts.
    image_size_px : side of the stimulus images.
    snr : single-trial signal SD / noise SD for a voxel of gain 1.
    seed : the same seed gives the same files.
    n_voxels : voxels in the file (about 95% in ``ROI_VC``).
    shared_noise : share of the noise variance common to many voxels (low rank).
    subject : subject name in the file names.
    progress : show progress bars.
    overwrite : replace an existing non-empty ``out_dir`` (at the end, once all is written).

    Returns
    -------
    dict
        ``files`` {"training", "test"}, ``images_dir``, ``seed``, ``snr``, ``n_voxels``,
        ``image_size_px``, ``sets`` {name: {images, repetitions, samples}}, the ridge
        calibration ``ridge_pairwise_identification``; also in ``truth/summary.json``.

    Raises
    ------
    ConfigError
        A bad count, ``snr``, ``shared_noise`` or ``family``.
    DataError
        ``out_dir`` exists and is not an empty folder.
    """
    spec = dict(locals())  # every argument, recorded in the summary
    out = Path(spec.pop("out_dir"))
    spec.pop("progress")
    spec.pop("overwrite")
    _check(spec)
    check_out_dir(out, overwrite)
    with building_folder(out) as tmp, Progress(disable=not progress, transient=True) as bar:
        sets = _stimulus_sets(tmp, spec, bar)
        summary = _subject(tmp, out, spec, sets, "", out / "truth", bar)
    return summary


def simulate_prf_subjects(
    out_dir: str | os.PathLike[str],
    preset: str,
    n_subjects: int,
    seed: int = 0,
    snr: float = DEFAULT_SNR,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``n_subjects`` (> 1) subjects of one preset who saw the same experiment.

    The stimuli, their files and the trial schedule come from the stimulus streams, so
    they are the same for every subject; subject ``sub-KK``'s voxel count (the preset's
    +- 20%), brain and noise come from streams named ``sub-KK/size``, ``sub-KK/brain``,
    ``sub-KK/noise/<set>``. Layout: :mod:`e2e_recon.sim.cohort`.

    Parameters
    ----------
    out_dir : folder to create (checked by the caller: absent or empty, or to be replaced).
    preset : a key of :data:`PRESETS` (without ``prf-``).
    n_subjects, seed, snr, progress : as in :func:`simulate_prf_subject`.

    Returns
    -------
    dict
        The experiment's summary; ``subjects`` maps each name to its own summary.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    base = {**vars(PRESETS[preset]), "snr": snr, "seed": seed, "shared_noise": SHARED_NOISE}
    _check(base)
    subjects: dict[str, Any] = {}
    with building_folder(out) as tmp, Progress(disable=not progress, transient=True) as bar:
        sets = _stimulus_sets(tmp, base, bar)
        for name in subject_names(n_subjects):
            stream = subject_stream(name)
            n_voxels = voxel_count(base["n_voxels"], _rng(seed, f"{stream}size"))
            spec = {**base, "n_voxels": n_voxels, "subject": name}
            subjects[name] = _subject(tmp, out, spec, sets, stream, out / "truth" / name, bar)
        overall = experiment_summary(out, f"prf-{preset}", "prf", seed, snr, subjects)
        overall["wall_s"] = round(time.perf_counter() - start, 1)
        (tmp / "truth" / "summary.json").write_text(json.dumps(overall, indent=2) + "\n")
    return overall


def _stimulus_sets(tmp: Path, spec: dict[str, Any], bar: Progress) -> dict[str, dict]:
    """Images, kinds, ids and feature maps of the training and test sets; writes the PNGs."""
    size, grey = spec["image_size_px"], spec["family"] == "digits"
    counts = {"training": spec["n_train"], "test": spec["n_test"]}
    task = bar.add_task("stimuli", total=len(counts))
    number = 0
    sets: dict[str, dict] = {}
    for key, n in counts.items():
        rng = _rng(spec["seed"], f"stimuli/{key}")
        images, kinds, synsets = stimuli.make_stimuli(spec["family"], n, size, rng)
        ids = np.array([float(f"{s}.{number + i + 1:06d}") for i, s in enumerate(synsets)])
        number += n  # image numbers run on across sets: ids never repeat
        features = encoding.feature_maps(images, min(size, 32))
        sets[key] = {"images": images, "kinds": kinds, "ids": ids, "features": features}
        folder = tmp / "images" / key
        folder.mkdir(parents=True, exist_ok=True)
        for stim_id, img in zip(ids, images, strict=True):
            pixels = np.round(img * 255).astype(np.uint8)  # (S, S, 3)
            picture = Image.fromarray(pixels[..., 0], "L") if grey else Image.fromarray(pixels)
            picture.save(folder / f"{stimulus_name(stim_id)}.png")
        bar.advance(task)
    return sets


def _subject(
    tmp: Path, out: Path, spec: dict, sets: dict, stream: str, truth: Path, bar: Progress
) -> dict[str, Any]:
    """Brain, trials, BData files and truth of one subject; returns its summary."""
    seed, grey = spec["seed"], spec["family"] == "digits"
    reps = {"training": spec["train_presentations"], "test": spec["test_presentations"]}
    task = bar.add_task(f"{stream}encoding and files", total=len(reps) + 1)
    brain = encoding.build_brain(spec["n_voxels"], _rng(seed, f"{stream}brain"))
    prf = encoding.prf_matrix(brain, min(spec["image_size_px"], 32))
    train_features = sets["training"]["features"]
    brain.feature_sd = train_features.std(axis=(0, 2, 3)).astype(np.float64) + 1e-6
    raw_train = encoding.responses(brain, train_features, prf)
    brain.mean, brain.sd = raw_train.mean(axis=0), raw_train.std(axis=0) + 1e-9
    summary: dict[str, Any] = {"simulator": SIMULATOR, **spec, "sets": {}}
    files, arrays = {}, {}
    for key, n_reps in reps.items():
        s, n = sets[key], len(sets[key]["ids"])
        signal = (encoding.responses(brain, s["features"], prf) - brain.mean) / brain.sd  # (n, V)
        sched = schedule(n, n_reps, _rng(seed, f"schedule/{key}"))  # shared by all subjects
        noise_rng = _rng(seed, f"{stream}noise/{key}")
        values = encoding.trials(
            signal, sched["order"], brain, spec["snr"], spec["shared_noise"], noise_rng
        )
        name = f"{spec['subject']}_{FILE_PART[key]}_original_VC.h5"
        (tmp / "fmri").mkdir(parents=True, exist_ok=True)
        write_bdata(tmp / "fmri" / name, values, s["ids"][sched["order"]], sched, brain)
        files[key] = str(out / "fmri" / name)
        summary["sets"][key] = {"images": n, "repetitions": n_reps, "samples": n * n_reps}
        arrays[key] = (values, sched["order"], signal)
        bar.advance(task)
    summary.update(files=files, images_dir=str(out / "images"), truth_dir=str(truth))
    summary["roi_voxels"] = {"ROI_VC": int((brain.area >= 0).sum())}
    summary["median_noise_ceiling_pct"] = noise_ceiling(brain, spec)
    ridge, alpha = calibrate(arrays, sets, brain, grey)
    summary.update(ridge_pairwise_identification=ridge, ridge_alpha=alpha)
    relative = truth.relative_to(out)
    _write_truth(tmp / relative, summary, sets, brain, arrays)
    bar.advance(task)
    return summary


def _write_truth(
    folder: Path, summary: dict, sets: dict, brain: encoding.Brain, arrays: dict
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / "encoding.npz", **{k: v for k, v in vars(brain).items()})
    for key, s in sets.items():
        np.savez_compressed(
            folder / f"noiseless_{key}.npz", stimulus_id=s["ids"], signal=arrays[key][2]
        )
    lines = ["set,stimulus_id,stimulus_name,kind"]
    for key, s in sets.items():
        lines += [
            f"{key},{i:.6f},{stimulus_name(i)},{k}"
            for i, k in zip(s["ids"], s["kinds"], strict=True)
        ]
    (folder / "stimuli.csv").write_text("\n".join(lines) + "\n")
    model = {
        "areas": [
            dict(
                zip(("roi", "share", "sigma0", "sigma_per_ecc", "colour", "energy"), a, strict=True)
            )
            for a in encoding.AREAS
        ],
        "exponent": encoding.EXPONENT,
        "noise_factors": encoding.NOISE_FACTORS,
        "response": "offset + scale * (gain * z(sign(d)|d|^exponent) + noise / snr)",
    }
    (folder / "model.json").write_text(json.dumps(model, indent=2) + "\n")
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
