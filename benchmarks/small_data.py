"""End-to-end training against ridge regression on small, noisy simulated datasets.

Simulates subjects of two independent simulator families (``--family``, repeatable):
``project`` is the project's simulator (``small`` preset: 800 training images x 2
presentations, 40 test images x 10, 64 px, SNR 0.25, where ridge regression reaches
about 75-90% pairwise pixel identification); ``prf:PRESET`` is the population
receptive field simulator of ``e2e_recon.sim.prf`` (``simulate --preset prf-*``),
which shares no code with the project simulator (``prf:mixed-800x2``, ``prf:mixed-90x1``,
``prf:mixed-1600x1``, ``prf:digits-90x1``, ``prf:digits-800x2`` ...: family, training images x
presentations; 28 px digits are resized by the preset like any other images, to 72 px
with the central 64 px compared). Default: ``project`` and ``prf:mixed-800x2``. For
each it trains with
``configs/small.yaml`` on 2 CPU threads for at most ``--minutes``, reconstructs
the natural test set with ``best.pt``, with the project's ridge decoder and with
scikit-learn's ``RidgeCV`` (both fitted on the generator's own images, crops and
statistics), and evaluates all with ``evaluate_recon`` (pairwise pixel
identification, PixCorr, EfficientNet-Lite2 feature identification, bootstrap
intervals over images, paired per-image differences of e2e against each ridge).
Prints one JSON object: per family, per seed and averaged over seeds, with the
pooled paired differences and the wall time of each run.

    .venv/bin/python benchmarks/small_data.py                      # 2 families x 3 seeds x 5 min
    .venv/bin/python benchmarks/small_data.py --family prf:digits-90x1 --family prf:mixed-1600x1
    .venv/bin/python benchmarks/small_data.py --seeds 1 --minutes 1
    .venv/bin/python benchmarks/small_data.py --seeds 1 \\
        --variant no_avg=train.presentation_average_k=1

Each ``--variant NAME=KEY=VALUE[,KEY=VALUE...]`` trains once more with those
overrides on top of the preset (the ablation); the preset itself runs as ``small``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

GOAL = "end-to-end >= ridge + 0.03 pixel identification, and above ridge on Lite2 features"
SIM_PRESET = "small"
DEFAULT_SNR = 0.25
#: The digits family at the SNR where its ridge matches a real 90-image digits set's (0.93);
#: the colour family uses ``sim.prf.presets.DEFAULT_SNR`` (docs/simulators-and-greyscale.md).
DIGITS_SNR = 0.2


def family_snr(family: str, snr: float | None) -> float:
    """The SNR a family is simulated at: ``--snr`` or the family's calibrated default."""
    if snr is not None:
        return snr
    if family == "project":
        return DEFAULT_SNR
    from e2e_recon.sim.prf.presets import DEFAULT_SNR as PRF_SNR

    return DIGITS_SNR if family.startswith("prf:digits") else float(PRF_SNR)


def subject_dir(root: Path, family: str, seed: int, snr: float) -> tuple[Path, dict[str, Any]]:
    """Simulate (or reuse) the subject of one family and seed; return its folder and summary."""
    tag = family.replace(":", "-")
    out = root / f"subject_{tag}_seed{seed}_snr{snr:g}"
    summary_file = out / "truth" / "summary.json"
    if not summary_file.is_file():
        if family == "project":
            from e2e_recon.sim.subject import simulate_subject

            simulate_subject(out, preset=SIM_PRESET, seed=seed, snr=snr, progress=False)
        elif family.startswith("prf:"):
            from e2e_recon.sim.prf.subject import PRESETS, simulate_prf_subject

            preset = family.partition(":")[2]
            if preset not in PRESETS:
                raise SystemExit(f"--family {family}: choose prf:{' or prf:'.join(PRESETS)}")
            simulate_prf_subject(out, **vars(PRESETS[preset]), snr=snr, seed=seed)
        else:
            raise SystemExit(f"--family {family}: use 'project' or 'prf:PRESET'")
    return out, json.loads(summary_file.read_text())


def train_run(
    subject: dict[str, Any], run_dir: Path, seed: int, minutes: float, overrides: list[str]
) -> dict[str, Any]:
    """Train with the small preset (plus overrides) for at most ``minutes``."""
    from e2e_recon.config import load_config
    from e2e_recon.train.loop import train

    files = subject["files"]
    cfg = load_config(
        "small",
        [
            f"data.train_fmri='{files['training']}'",
            f"data.test_fmri=['{files['test']}']",
            f"data.images_dir='{subject['images_dir']}'",
            f"train.seed={seed}",
            f"train.max_minutes={minutes}",
            "train.device=cpu",
            "train.grid_every_iters=0",
            *overrides,
        ],
    )
    return train(cfg, run_dir)


def evaluate_methods(
    subject: dict[str, Any], run_dirs: dict[str, Path], out: Path, ridge: bool
) -> dict[str, Any]:
    """Reconstruct the natural test set with each run's best generator and both ridges; evaluate.

    The baselines are fitted on exactly what the first run's generator was trained
    on: the same training images (its validation split held out), the same target
    crops, the same voxel statistics. ``ridge`` is the project's decoder;
    ``ridge-sklearn`` is scikit-learn's ``RidgeCV`` (efficient leave-one-out over
    ``np.logspace(0, 7, 15)``) on the same inputs, as a careful user would fit it.
    """
    import torch

    from e2e_recon.config import load_config
    from e2e_recon.data.dataset import load_test_set
    from e2e_recon.data.geometry import ImageGeometry, write_geometry
    from e2e_recon.evaluate.evaluate import evaluate_recon
    from e2e_recon.recon.pipeline import fit_ridge, ridge_reconstruct, same_statistics
    from e2e_recon.recon.reconstruct import load_recon_models, reconstruct, write_index
    from e2e_recon.train.setup import load_data

    first_cfg = load_config(next(iter(run_dirs.values())) / "config.yaml")
    d = first_cfg.data
    geometry = ImageGeometry.from_config(first_cfg, "the benchmark's runs")
    norm = None
    for name, run_dir in run_dirs.items():
        model = load_recon_models(run_dir)[0]
        model.method = name
        assert model.norm is not None
        norm = norm or model.norm
        test = load_test_set(d.test_fmri[0], d.images_dir, d.roi, model.norm, d.image_size_px)
        reconstruct([model], [test], out, torch.device("cpu"))
    write_geometry(out, geometry)
    if ridge and norm is not None:
        training = load_data(first_cfg)
        test = load_test_set(d.test_fmri[0], d.images_dir, d.roi, norm, d.image_size_px)
        decoder = fit_ridge(training, geometry, norm)
        write_index(out, ridge_reconstruct(decoder, [test], out))
        voxels = same_statistics(training, norm)
        write_index(out, sklearn_ridge(training, voxels, geometry, test, out))
    return evaluate_recon(out, Path(subject["images_dir"]), resolution_px=None, device="cpu")


def sklearn_ridge(training: Any, voxels: np.ndarray, geometry: Any, test: Any, out: Path) -> list:
    """scikit-learn's RidgeCV on the same z-scored single trials and target pixels."""
    from sklearn.linear_model import RidgeCV

    from e2e_recon.recon.reconstruct import write_set

    crops = geometry.target_crops(np.asarray(training.images))[..., ::-1]  # (M, c, c, 3) RGB
    if geometry.colour == "grey":  # a grey run: its luminance, one channel, as the ridge's
        crops = crops[..., :1]
    targets = crops.reshape(len(crops), -1).astype(np.float64)[training.image_index]  # (N, D)
    model = RidgeCV(alphas=np.logspace(0, 7, 15)).fit(voxels.astype(np.float64), targets)
    pred = model.predict(test.voxels.astype(np.float64)).reshape(-1, *crops.shape[1:])
    print(f"ridge-sklearn alpha {model.alpha_:g}", file=sys.stderr)
    return write_set(out, "ridge-sklearn", test, pred.astype(np.float32))


def paired_pixel(result: dict[str, Any]) -> dict[str, Any]:
    """Paired per-image pixel identification of e2e against each ridge (natural set)."""
    return {
        f"{c['method']} - {c['baseline']}": c["scores"]["pixid"]
        for c in result.get("comparisons", [])
        if c["set"] == "natural"
    }


def pooled_paired(recon_dirs: list[Path], n_boot: int = 1000) -> dict[str, Any]:
    """Per-image differences of every seed pooled: e2e against each ridge, each metric.

    Each seed is another simulated subject with other test images, so the pool holds
    ``40 x seeds`` independent pairs; the interval resamples them (paired bootstrap).
    """
    import csv

    from e2e_recon.evaluate.paired import is_baseline, paired_difference

    by_method: dict[str, dict[str, dict[str, float]]] = {}
    for seed, recon_dir in enumerate(recon_dirs):
        with (recon_dir / "per_image.csv").open() as handle:
            for row in csv.DictReader(handle):
                if row["set"] != "natural":
                    continue
                key = f"{seed}/{row['stimulus_name']}"
                for metric, value in row.items():
                    if metric in ("set", "method", "stimulus_id", "stimulus_name", "n_trials"):
                        continue
                    number = float(value) if value not in ("", None) else float("nan")
                    by_method.setdefault(row["method"], {}).setdefault(metric, {})[key] = number
    out: dict[str, Any] = {}
    methods = [m for m in by_method if not is_baseline(m)]
    for method in methods:
        for baseline in (m for m in by_method if is_baseline(m)):
            scores = {}
            for metric, values in by_method[method].items():
                base = by_method[baseline].get(metric, {})
                keys = sorted(set(values) & set(base))
                first = np.array([values[k] for k in keys])
                second = np.array([base[k] for k in keys])
                scores[metric] = paired_difference(first, second, n_boot=n_boot)
            out[f"{method} - {baseline}"] = scores
    return out


def scores_by_method(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{method: {metric: {mean, ci_low, ci_high}}}`` for the natural test set."""
    return {r["method"]: r["scores"] for r in result["results"] if r["set"] == "natural"}


def average(per_seed: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Mean over seeds of each method's mean score, with the spread (min, max) of seeds."""
    out: dict[str, dict[str, float]] = {}
    for method in per_seed[0]:
        out[method] = {}
        for metric in per_seed[0][method]:
            values = [s[method][metric]["mean"] for s in per_seed if method in s]
            values = [v for v in values if v is not None]
            if values:
                out[method][metric] = round(float(np.mean(values)), 4)
    return out


def parse_variants(items: list[str]) -> dict[str, list[str]]:
    """``NAME=KEY=VALUE,KEY=VALUE`` -> ``{NAME: [KEY=VALUE, ...]}``."""
    variants: dict[str, list[str]] = {"small": []}
    for item in items:
        name, _, rest = item.partition("=")
        variants[name] = [o for o in rest.split(",") if o]
    return variants


def run_family(
    root: Path, family: str, args: argparse.Namespace, variants: dict[str, list[str]]
) -> dict[str, Any]:
    """Every seed of one simulator family: train, reconstruct, evaluate; scores and timings."""
    snr = family_snr(family, args.snr)
    per_seed, runs_info, recon_dirs = [], [], []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        _, subject = subject_dir(root, family, seed, snr)
        run_dirs, info = {}, {}
        for name, overrides in variants.items():
            run_dir = root / f"run_{family.replace(':', '-')}_seed{seed}_{name}_{int(time.time())}"
            summary = train_run(subject, run_dir, seed, args.minutes, overrides)
            run_dirs[name] = run_dir
            info[name] = {
                "iterations": summary["iterations"],
                "seconds": summary["seconds"],
                "best": summary["best"],
                "early_stopped": summary["early_stopped"],
                "stop_reason": summary.get("stop_reason"),
            }
        recon_dir = root / f"recon_{family.replace(':', '-')}_seed{seed}_{int(time.time())}"
        result = evaluate_methods(subject, run_dirs, recon_dir, ridge=True)
        recon_dirs.append(recon_dir)
        scores = scores_by_method(result)
        per_seed.append(scores)
        runs_info.append(
            {"seed": seed, "ridge_calibration": subject.get("ridge_pairwise_identification"),
             "sets": subject.get("sets"), "runs": info, "scores": scores,
             "paired_pixel_identification": paired_pixel(result),
             "ridge_alphas": result.get("baselines", {}).get("ridge", {}).get("alpha")}
        )  # fmt: skip
    return {
        "snr": snr,
        "mean_over_seeds": average(per_seed),
        "pooled_paired": pooled_paired(recon_dirs),
        "per_seed": runs_info,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--family", action="append", default=[],
        help="project or prf:PRESET (repeatable; default: project and prf:mixed-800x2)",
    )  # fmt: skip
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first .. first+seeds-1")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--snr", type=float, default=None, help="default: each family's own")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", action="append", default=[], help="NAME=KEY=VALUE,...")
    parser.add_argument("--only-variants", action="store_true", help="skip the plain preset")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep subjects and runs here")
    args = parser.parse_args(argv)

    import torch

    from e2e_recon.device import cpu_info

    torch.set_num_threads(args.threads)
    variants = parse_variants(args.variant)
    if args.only_variants and len(variants) > 1:
        del variants["small"]
    families = args.family or ["project", "prf:mixed-800x2"]
    tmp = None
    if args.work_dir is None:
        tmp = tempfile.TemporaryDirectory()
        root = Path(tmp.name)
    else:
        root = args.work_dir
        root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = {family: run_family(root, family, args, variants) for family in families}
    print(
        json.dumps(
            {
                "benchmark": "small_data",
                "goal": GOAL,
                "minutes_per_run": args.minutes,
                "variants": variants,
                "families": results,
                "wall_s": round(time.perf_counter() - started, 1),
                **cpu_info(),
            },
            indent=1,
        )
    )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
