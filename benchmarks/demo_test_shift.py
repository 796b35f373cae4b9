"""Diagnosis: how far each demo test set lies from the training data, and what it costs.

Reads a finished demo run folder (``e2e-recon demo`` output) and reports, per test
set (natural, shapes, letters):

- ``shared_component``: the set's mean pattern (trial averages z-scored with the
  training statistics, as at test time) projected on its own direction, against the
  range of the training images' mean patterns on that direction, before and after the
  test-time scaling by sqrt(n);
- for every generator snapshot, pixel identification of the display images (the
  published procedure: trial average, training z-score, x sqrt(n)), averaged over
  ``--resamples`` bootstrap draws of each image's presentations, so that one model's
  figure does not hang on one average of 12 noisy trials;
- the same with the set's mean pattern replaced by the natural test set's
  (``recentred``): NOT the published procedure, a probe of whether the generator
  keeps a set's image-specific signal when its shared component is removed;
- the ridge baseline on the same resamples, as the reference in the same run;
- ``stimulus_part`` (when the simulated subject's ``truth/`` is beside its images): how
  much of the set's mean pattern, on the same direction, the noiseless responses to its
  stimuli explain; the rest is the nuisance its sessions add (per-session offsets and
  per-run drift are the same for every image of a session, so averaging trials keeps
  them) and the trial noise left after averaging.

Usage: .venv/bin/python benchmarks/demo_test_shift.py RUN_DIR [--resamples 30]
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from e2e_recon.config import load_config
from e2e_recon.data.bdata import BData
from e2e_recon.data.dataset import load_test_set, load_training_set
from e2e_recon.data.images import center_crop_uint8, display_image
from e2e_recon.data.labels import stimulus_ids_of
from e2e_recon.device import cpu_info
from e2e_recon.evaluate.metrics import pairwise_identification
from e2e_recon.recon.pipeline import fit_ridge
from e2e_recon.recon.reconstruct import generate, load_recon_models
from e2e_recon.report.contents import resolve_path

SETS = {"natural": "NaturalImageTest", "shapes": "ArtificialImage", "letters": "LetterImage"}


def resampled_inputs(path: Path, test, norm, roi: str, n_draws: int, seed: int) -> np.ndarray:
    """Bootstrap draws of each image's presentations, averaged and z-scored.

    Returns
    -------
    ndarray, shape (n_draws, M, V), float32, not yet scaled by sqrt(n)
    """
    bdata = BData(path)
    voxels = bdata.dataset[:, bdata.select_index(roi)]  # (n, V)
    ids = stimulus_ids_of(bdata)
    rng = np.random.default_rng(seed)
    rows = [np.flatnonzero(ids == sid) for sid in test.stimulus_ids]
    draws = np.empty((n_draws, len(rows), voxels.shape[1]), dtype=np.float32)
    for d in range(n_draws):
        for i, r in enumerate(rows):
            draws[d, i] = norm.apply(voxels[rng.choice(r, size=r.size)].mean(axis=0))
    return draws


def mean_identification(reconstruct, draws: np.ndarray, stimuli: np.ndarray) -> float:
    """Pairwise identification of the display images of ``reconstruct(x)`` (RGB float
    images) against the stimuli, averaged over the draws ``x`` of ``draws``."""
    scores = []
    for x in draws:
        shown = np.stack([display_image(image) for image in reconstruct(x)]).astype(np.float64)
        scores.append(pairwise_identification(shown, stimuli).mean())
    return round(float(np.mean(scores)), 3)


def shared_component(mean: np.ndarray, n_trials: np.ndarray, image_means: np.ndarray):
    """Projection of a set's mean pattern ``mean`` (V,) on its own direction, and the
    training range."""
    train = image_means @ (mean / np.linalg.norm(mean))
    return {
        "test_mean": round(float(np.linalg.norm(mean)), 2),
        "test_mean_scaled": round(float(np.linalg.norm(mean) * np.sqrt(n_trials.mean())), 2),
        "training_images_min": round(float(train.min()), 2),
        "training_images_max": round(float(train.max()), 2),
    }


TRUTH_FILES = {"natural": "noiseless_test", "shapes": "noiseless_artificial",
               "letters": "noiseless_letters"}  # fmt: skip


def load_truth(truth: Path) -> dict | None:
    """What :func:`stimulus_part` needs from a simulated subject's ``truth/``, read once.

    A simulated trial is ``baseline * (1 + 0.01 * (snr * gain * signal + nuisance))``
    (``sim/trials.py``), so the signal's share of a z-scored mean is exact.
    """
    if not (truth / "encoding.npz").is_file():
        return None
    encoding = np.load(truth / "encoding.npz")
    snr = json.loads((truth / "summary.json").read_text())["snr"]
    return {
        "folder": truth,
        "scale": encoding["baseline"] * 0.01 * snr * encoding["gain"],  # (V,)
        "training_mean": np.load(truth / "noiseless_training.npz")["signal"].mean(axis=0),
    }


def stimulus_part(truth: dict | None, key: str, direction: np.ndarray, norm) -> float | None:
    """Projection of the noiseless, stimulus-driven part of a set's mean pattern (z-scored
    like the data) on ``direction``, the unit direction of the measured mean pattern;
    None without truth or for an ROI smaller than all voxels."""
    if truth is None:
        return None
    signal = np.load(truth["folder"] / f"{TRUTH_FILES[key]}.npz")["signal"].mean(axis=0)  # (V,)
    if signal.shape[0] != direction.shape[0]:
        return None
    predicted = truth["scale"] * (signal - truth["training_mean"]) / norm.std  # (V,), z units
    return round(float(predicted @ direction), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resamples", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    cfg = load_config(args.run_dir / "config.yaml")
    roi, size, crop = cfg.data.roi, cfg.data.image_size_px, cfg.data.crop_px
    train_fmri = resolve_path(cfg.data.train_fmri, args.run_dir)
    images_dir = resolve_path(cfg.data.images_dir, args.run_dir)
    if train_fmri is None or images_dir is None:
        raise SystemExit(f"{args.run_dir}: the training file or images of its config are missing")
    fmri = train_fmri.parent
    training = load_training_set(train_fmri, images_dir, roi, size)
    image_means = np.stack(
        [
            training.voxels[training.image_index == i].mean(0)
            for i in range(len(training.stimulus_ids))
        ]
    )  # (M, V)
    models = load_recon_models(args.run_dir / "checkpoints")
    # The ridge baseline as the demo fits it: the generator's geometry and statistics.
    ridge = fit_ridge(training, models[0].geometry, models[0].norm)
    device = torch.device("cpu")

    sets = {}
    for key, part in SETS.items():
        path = fmri / f"{cfg.data.subject}_perception{part}_original_VC.h5"
        test = load_test_set(path, images_dir, roi, training.norm, size)
        stimuli = center_crop_uint8(np.asarray(test.images), crop)[..., ::-1].astype(np.float64)
        draws = resampled_inputs(path, test, training.norm, roi, args.resamples, args.seed)
        sets[key] = (test, stimuli, draws)
    natural_mean = sets["natural"][2].mean(axis=(0, 1))  # (V,)
    truth = load_truth(images_dir.parent / "truth")

    result: dict = {"cpu": cpu_info(), "run_dir": str(args.run_dir), "resamples": args.resamples}
    for key, (test, stimuli, draws) in sets.items():
        scale = np.sqrt(test.n_trials)[:, None].astype(np.float32)  # (M, 1)
        recentred = draws - draws.mean(axis=(0, 1)) + natural_mean
        mean = test.voxels.mean(axis=0)  # (V,)
        component: dict[str, float | None] = {
            **shared_component(mean, test.n_trials, image_means),
            "stimulus_part": stimulus_part(truth, key, mean / np.linalg.norm(mean), training.norm),
        }
        row: dict = {"shared_component": component}
        row["ridge"] = mean_identification(lambda x: ridge.predict(x)[..., ::-1], draws, stimuli)
        for model in models:
            row[model.method] = {
                variant: mean_identification(
                    lambda x, m=model: generate(m, x, device), inputs * scale, stimuli
                )
                for variant, inputs in (("published", draws), ("recentred", recentred))
            }
        result[key] = row
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
