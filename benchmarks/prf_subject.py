"""A second, independent simulated subject: population receptive fields over image features.

This simulator shares no code with ``e2e_recon.sim`` (other stimuli, another encoding
model, its own HDF5 writer), so that a recipe tuned on one family can be checked on
the other, and so that the BData reader meets a file it did not write.

Stimuli (``family``, in ``prf_stimuli.py``): ``mixed`` are colour shapes, gratings,
Gabor-like blobs, checkerboards and plaids (RGB PNG); ``digits`` are digits drawn from
stroke skeletons with jittered position, size, rotation, slant and thickness, light on
dark (greyscale PNG).

Encoding model (``prf_brain.py``): Gaussian population receptive fields, growing with
eccentricity and visual area, over luminance, R-G, B-Y and oriented contrast-energy
maps; a compressive nonlinearity (signed power 0.5) on the summed drive; per-voxel gain
and offset. Trial noise is Gaussian, partly shared across voxels (low rank), with
single-trial ``snr`` = signal SD / noise SD for a voxel of gain 1. About 5% of the
voxels lie outside visual cortex (``ROI_VC`` = 0) and carry noise only.

Files: ``fmri/<subject>_perceptionNaturalImage{Training,Test}_original_VC.h5`` (BData:
``dataset`` samples x [Run, Session, Label (2 columns), voxels], ``metadata``
key/description/value; the stimulus id is in column 1 of ``Label``, there is no
``stimulus_id`` key), ``images/{training,test}/<name>.png`` and ``truth/``.
Stimulus ids follow the lab's float scheme ``SYNSET.NNNNNN`` with made-up synsets:
``9100001``-``9100005`` for the five colour kinds, ``9200000 + d`` for digit ``d``;
the image number runs over training then test images, so ``9200006.000017`` is the
image ``n09200006_17.png`` (a 6).

    python benchmarks/prf_subject.py OUT --preset mixed-800x2
    python benchmarks/prf_subject.py OUT --preset digits-90x1 --seed 3 --snr 0.5
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import h5py
import numpy as np
from PIL import Image
from scipy.ndimage import zoom


def _sibling(name: str) -> ModuleType:
    """``benchmarks/<name>.py``, loaded by path once: benchmarks/ is not a package."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
    return sys.modules[name]


stimuli = _sibling("prf_stimuli")
encoding = _sibling("prf_brain")

#: Single-trial SNR (signal SD / noise SD for a voxel of gain 1) at which ridge regression
#: reaches about 87-89% pairwise pixel identification on the mixed family at 800 x 2
#: training, 40 x 10 test (docs/simulators-and-greyscale.md has the curve).
DEFAULT_SNR = 0.1
SHARED_NOISE = 0.3  # share of the noise variance common to many voxels
DIGIT_SYNSET = stimuli.DIGIT_SYNSET
FILE_PART = {"training": "perceptionNaturalImageTraining", "test": "perceptionNaturalImageTest"}


@dataclass(frozen=True)
class Preset:
    """One variant: family, counts, image size."""

    family: str
    n_train: int
    train_presentations: int
    n_test: int
    test_presentations: int
    image_size_px: int


PRESETS = {
    "mixed-90x1": Preset("mixed", 90, 1, 40, 10, 64),
    "mixed-200x2": Preset("mixed", 200, 2, 40, 10, 64),
    "mixed-800x1": Preset("mixed", 800, 1, 40, 10, 64),
    "mixed-800x2": Preset("mixed", 800, 2, 40, 10, 64),
    "mixed-1600x1": Preset("mixed", 1600, 1, 50, 10, 64),
    "digits-90x1": Preset("digits", 90, 1, 10, 1, 28),
    "digits-800x2": Preset("digits", 800, 2, 40, 10, 28),
}


def _rng(seed: int, stream: str) -> np.random.Generator:
    """A reproducible random stream per purpose, so changing one part leaves the others."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _schedule(n_images: int, presentations: int, rng: np.random.Generator) -> dict:
    """Image order (each presentation a fresh permutation), runs of at most 50 trials."""
    order = np.concatenate([rng.permutation(n_images) for _ in range(presentations)])
    run = np.arange(order.size) // 50 + 1
    trial_in_run = np.arange(order.size) % 50 + 1
    session = np.repeat(np.arange(presentations) + 1, n_images)
    return {"order": order, "run": run, "trial": trial_in_run, "session": session}


def write_bdata(
    path: Path, voxels: np.ndarray, ids: np.ndarray, sched: dict, brain: encoding.Brain
) -> None:
    """A BData file written with h5py directly: Run, Session, Label (trial, id), voxels."""
    n, v = voxels.shape
    dataset = np.column_stack([sched["run"], sched["session"], sched["trial"], ids, voxels])
    n_cols = dataset.shape[1]

    def row(first: int, count: int, values: Any = 1.0) -> np.ndarray:
        out = np.full(n_cols, np.nan)
        out[first : first + count] = values
        return out

    meta = [
        ("Run", "1 = run number", row(0, 1)),
        ("Session", "1 = session number", row(1, 1)),
        ("Label", "1 = label (trial in run, stimulus id)", row(2, 2)),
        ("VoxelData", "1 = voxel data", row(4, v)),
    ]
    for i, (name, *_rest) in enumerate(encoding.AREAS):
        meta.append((f"ROI_{name}", f"1 = ROI {name}", row(4, v, (brain.area == i) * 1.0)))
    meta.append(("ROI_VC", "1 = visual cortex", row(4, v, (brain.area >= 0) * 1.0)))
    for axis in range(3):  # made-up voxel coordinates (mm), distinct per voxel
        coords = [np.arange(v) % 20, (np.arange(v) // 20) % 20, np.arange(v) // 400][axis]
        meta.append((f"voxel_{'xyz'[axis]}", f"voxel {'xyz'[axis]} (mm)", row(4, v, 3.0 * coords)))
    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w") as h5:
        h5.create_dataset("dataset", data=dataset.astype(np.float64))
        group = h5.create_group("metadata")
        group.create_dataset("key", data=np.array([m[0] for m in meta], dtype="S"))
        group.create_dataset("description", data=np.array([m[1] for m in meta], dtype="S"))
        group.create_dataset("value", data=np.stack([m[2] for m in meta]))
        h5.create_group("header").create_dataset("creator", data=b"benchmarks/prf_subject.py")
    os.replace(tmp, path)
    assert n == ids.size


def ridge_identification(
    x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, groups: np.ndarray
) -> tuple[float, float]:
    """Ridge pixel decoder, alpha chosen on 10% held-out images: (identification, alpha).

    ``x`` (N, V) z-scored trials, ``y`` (N, D) targets, ``groups`` (N,) image of each trial.
    """
    held = np.isin(groups, np.unique(groups)[::10])
    alphas = np.logspace(0, 7, 15)

    def fit_predict(train: np.ndarray, target: np.ndarray, apply: np.ndarray) -> np.ndarray:
        # Through the N x N kernel: far cheaper than an SVD of (N, V) when V > N.
        mean = target.mean(axis=0)
        eigval, u = np.linalg.eigh(train @ train.T)  # (k,), (N, k)
        s2 = np.maximum(eigval, 0.0)
        projected = apply @ train.T @ u  # (n_apply, k) = apply @ V diag(s)
        ut_y = u.T @ (target - mean)  # (k, D)
        return np.stack([projected @ ((1 / (s2 + a))[:, None] * ut_y) + mean for a in alphas])

    preds = fit_predict(x[~held], y[~held], x[held])
    errors = ((preds - y[held][None]) ** 2).mean(axis=(1, 2))
    best = int(np.argmin(errors))
    pred = fit_predict(x, y, x_test)[best]
    return pairwise_identification(pred, y_test), float(alphas[best])


def pairwise_identification(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean share of wrong candidates whose correlation with a prediction is lower."""

    def z(a: np.ndarray) -> np.ndarray:
        a = a - a.mean(axis=1, keepdims=True)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    corr = z(pred) @ z(true).T  # (M, M): prediction i against image j
    right = np.diag(corr)[:, None]
    wins = (corr < right).sum(axis=1) / (len(corr) - 1)
    return float(wins.mean())


def _targets(images: np.ndarray, grey: bool, size: int = 32) -> np.ndarray:
    """Images as ridge targets: at most ``size`` px, grey for the digits; (n, D)."""
    if images.shape[1] > size:
        images = zoom(images, (1, size / images.shape[1], size / images.shape[1], 1), order=1)
    return (images.mean(axis=3) if grey else images).reshape(len(images), -1)


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

    Returns
    -------
    dict
        ``files`` {"training", "test"}, ``images_dir``, ``seed``, ``snr``, ``n_voxels``,
        ``image_size_px``, ``sets`` {name: {images, repetitions, samples}}, the ridge
        calibration ``ridge_pairwise_identification``; also in ``truth/summary.json``.
    """
    spec = dict(locals())  # every argument, recorded in the summary
    out = Path(spec.pop("out_dir"))
    if not (np.isfinite(snr) and snr > 0):
        raise ValueError(f"snr must be a positive number, got {snr!r}.")
    if not 0 <= shared_noise < 1:
        raise ValueError(f"shared_noise must be in [0, 1), got {shared_noise!r}.")
    if min(n_train, train_presentations, n_test, test_presentations, n_voxels) < 1:
        raise ValueError("counts (images, presentations, voxels) must be at least 1.")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty folder; choose another one.")
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        summary = _build(tmp, out, spec)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def _build(tmp: Path, out: Path, spec: dict[str, Any]) -> dict[str, Any]:
    seed, size, grey = spec["seed"], spec["image_size_px"], spec["family"] == "digits"
    counts = {
        "training": (spec["n_train"], spec["train_presentations"]),
        "test": (spec["n_test"], spec["test_presentations"]),
    }
    grid = min(size, 32)
    brain = encoding.build_brain(spec["n_voxels"], _rng(seed, "brain"))
    prf = encoding.prf_matrix(brain, grid)
    number = 0
    sets: dict[str, dict] = {}
    for key, (n, _) in counts.items():
        rng = _rng(seed, f"stimuli/{key}")
        images, kinds, synsets = stimuli.make_stimuli(spec["family"], n, size, rng)
        ids = np.array([float(f"{s}.{number + i + 1:06d}") for i, s in enumerate(synsets)])
        number += n  # image numbers run on across sets: ids never repeat
        sets[key] = {
            "images": images,
            "kinds": kinds,
            "ids": ids,
            "features": encoding.feature_maps(images, grid),
        }
    train_features = sets["training"]["features"]
    brain.feature_sd = train_features.std(axis=(0, 2, 3)).astype(np.float64) + 1e-6
    raw_train = encoding.responses(brain, train_features, prf)
    brain.mean, brain.sd = raw_train.mean(axis=0), raw_train.std(axis=0) + 1e-9
    summary: dict[str, Any] = {"simulator": "benchmarks/prf_subject.py", **spec, "sets": {}}
    files, arrays = {}, {}
    for key, (n, reps) in counts.items():
        s = sets[key]
        signal = (encoding.responses(brain, s["features"], prf) - brain.mean) / brain.sd  # (n, V)
        sched = _schedule(n, reps, _rng(seed, f"schedule/{key}"))
        noise_rng = _rng(seed, f"noise/{key}")
        values = encoding.trials(
            signal, sched["order"], brain, spec["snr"], spec["shared_noise"], noise_rng
        )
        name = f"{spec['subject']}_{FILE_PART[key]}_original_VC.h5"
        (tmp / "fmri").mkdir(parents=True, exist_ok=True)
        write_bdata(tmp / "fmri" / name, values, s["ids"][sched["order"]], sched, brain)
        files[key] = str(out / "fmri" / name)
        folder = tmp / "images" / key
        folder.mkdir(parents=True, exist_ok=True)
        for stim_id, img in zip(s["ids"], s["images"], strict=True):
            pixels = np.round(img * 255).astype(np.uint8)  # (S, S, 3)
            picture = Image.fromarray(pixels[..., 0], "L") if grey else Image.fromarray(pixels)
            picture.save(folder / f"{_name(stim_id)}.png")
        summary["sets"][key] = {"images": n, "repetitions": reps, "samples": n * reps}
        arrays[key] = (values, sched["order"], signal)
    summary.update(files=files, images_dir=str(out / "images"), truth_dir=str(out / "truth"))
    summary["roi_voxels"] = {"ROI_VC": int((brain.area >= 0).sum())}
    summary["median_noise_ceiling_pct"] = _noise_ceiling(brain, spec)
    ridge, alpha = _calibrate(arrays, sets, brain, grey)
    summary.update(ridge_pairwise_identification=ridge, ridge_alpha=alpha)
    _write_truth(tmp / "truth", summary, sets, brain, arrays)
    return summary


def _noise_ceiling(brain: encoding.Brain, spec: dict[str, Any]) -> float:
    """Median over VC voxels of the explainable variance (%) of a test mean, from the truth.

    A voxel's signal has variance ``gain**2`` and its noise ``1 / snr**2``, so a mean of
    n trials keeps ``100 g^2 / (g^2 + 1 / (n snr^2))`` percent (Allen et al. 2022's definition).
    """
    g2 = brain.gain[brain.area >= 0] ** 2
    noise = 1.0 / (spec["test_presentations"] * spec["snr"] ** 2)
    return round(float(np.median(100 * g2 / (g2 + noise))), 2)


def _name(stim_id: float) -> str:
    """The lab's id-to-name rule: ``9200006.000017`` -> ``n09200006_17``."""
    synset, image = ("%f" % stim_id).split(".")  # noqa: UP031 (the '%f' rounding is the rule)
    return f"n{int(synset):08d}_{int(image)}"


def _calibrate(arrays: dict, sets: dict, brain: encoding.Brain, grey: bool) -> tuple[float, float]:
    """Ridge pixel identification on the test set (VC voxels, test trials averaged)."""
    vc = brain.area >= 0
    values, order, _ = arrays["training"]
    mean, sd = values[:, vc].mean(axis=0), values[:, vc].std(axis=0)
    x = (values[:, vc] - mean) / sd
    y = _targets(sets["training"]["images"], grey)[order]
    test_values, test_order, _ = arrays["test"]
    avg = np.zeros((sets["test"]["ids"].size, int(vc.sum())))
    np.add.at(avg, test_order, test_values[:, vc])
    avg /= np.bincount(test_order)[:, None]
    score, alpha = ridge_identification(
        x, y, (avg - mean) / sd, _targets(sets["test"]["images"], grey), order
    )
    return round(score, 4), alpha


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
            f"{key},{i:.6f},{_name(i)},{k}" for i, k in zip(s["ids"], s["kinds"], strict=True)
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


def main(argv: list[str] | None = None) -> int:
    """Command line: write one subject, print its summary as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to create")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="mixed-800x2")
    for name in (
        "n_train",
        "train_presentations",
        "n_test",
        "test_presentations",
        "image_size_px",
        "n_voxels",
    ):
        parser.add_argument(
            "--" + name.replace("_", "-"), type=int, default=None, help="override the preset"
        )
    parser.add_argument("--snr", type=float, default=DEFAULT_SNR)
    parser.add_argument("--shared-noise", type=float, default=SHARED_NOISE)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    preset = vars(PRESETS[args.preset]).copy()
    preset.update({k: v for k, v in vars(args).items() if k in preset and v is not None})
    extra = {"n_voxels": args.n_voxels} if args.n_voxels else {}
    summary = simulate_prf_subject(
        args.out, snr=args.snr, seed=args.seed, shared_noise=args.shared_noise, **preset, **extra
    )
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
