"""A new subject from little data: a generator adapted from other subjects against the
fair ridge, the same recipe from scratch, and the subject's own full-data model.

For each simulator family (``--family``: ``project``, the package's simulator at the
``small`` preset and SNR 0.25 as in ``small_data.py``; ``prf-mixed-800x2`` or another
``prf-*`` preset, the independent pRF family) and seed, ``simulate --subjects 4`` writes
four subjects who saw the same 800 images x 2 presentations. Then:

1. a shared generator (``--config shared``) is trained on sub-01 to sub-03, full data;
2. for each size in ``--samples`` (default 90, 300, 1,000 training samples of sub-04,
   i.e. the first 45, 150, 500 training images with both presentations):
   the generator adapted from the shared run (``--config adapt``), the ``small`` recipe
   from scratch on the same samples, and the ridge pixel decoder fitted on the same
   samples with the generators' geometry and statistics (the fair ridge);
3. sub-04's own full-data model (``small`` on all 1,600 samples);
4. with ``--own-subjects``: one ``small`` model per source subject, to ask whether the
   shared generator serves its own three subjects as well as three single-subject models.

Every model reconstructs its subject's natural test set (40 images x 10); everything is
scored by ``evaluate_recon`` (pairwise pixel identification, PixCorr, SSIM,
EfficientNet-Lite2 stage3 and head identification). Paired per-image differences are
pooled over seeds (``40 x seeds`` pairs) with bootstrap intervals. Each size's ``goal``
says which of the goal's tests the adapted generator passes and, under
``full_data_model``, whether sub-04's own full-data model clears the same margins over the
ridge (where it does not, the margins ask more than the subject's data give). Each training run
stops by its preset's early stopping, ``--minutes`` or ``--max-iters``, whichever comes
first; wall time and iterations are printed for each. Prints one JSON object.

    .venv/bin/python benchmarks/transfer.py                         # 2 families x 3 seeds
    .venv/bin/python benchmarks/transfer.py --seeds 1 --samples 300 --minutes 3
    .venv/bin/python benchmarks/transfer.py --family project --seeds 1 --own-subjects
    .venv/bin/python benchmarks/transfer.py --seeds 1 --samples 300 \\
        --adapt-variant act=train.adapt_init=activations --work-dir bench/
    .venv/bin/python benchmarks/transfer.py --set data.voxel_selection=image-r2 --work-dir sel/
    .venv/bin/python benchmarks/transfer.py --seeds 1 --samples 300 --own-subjects \\
        --adapt-variant one=train.adapt_from={runs}/single-sub-01 --work-dir bench/

With ``--work-dir`` the simulated subjects and finished runs are kept and reused by a later
call (a run is reused when its folder holds ``generator.pt`` and ``benchmark_run.json``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

GOAL = (
    "with 300 samples: adapted >= fair ridge + 0.05 pixel identification and + 0.10 Lite2 head "
    "identification (paired intervals excluding 0), and >= 95% of the full-data model's pixel "
    "identification"
)
#: The goal's margins over the fair ridge, by metric (GOAL's text says the same).
MARGINS = {"pixid": 0.05, "effnet-lite2/head": 0.10}
#: Family -> (simulate preset, SNR; None: the preset's calibrated default).
FAMILIES: dict[str, tuple[str, float | None]] = {
    "project": ("small", 0.25),
    "prf-mixed-800x2": ("prf-mixed-800x2", None),
}
SOURCES = ("sub-01", "sub-02", "sub-03")
NEW = "sub-04"
#: Each adapted generator is compared with these on the new subject; also scratch - ridge
#: and full - ridge.
REFERENCES = ("ridge", "scratch", "full")
METRICS = ("pixid", "pixcorr", "ssim")
ID_COLUMNS = ("set", "method", "stimulus_id", "stimulus_name", "n_trials")


def experiment(root: Path, family: str, seed: int) -> dict[str, Any]:
    """Simulate (or reuse) the four subjects of one family and seed; return the summary."""
    from e2e_recon.sim import simulate_subjects

    preset, snr = FAMILIES.get(family, (family, None))  # else any simulate preset
    out = root / f"{family}-seed{seed}"
    summary_file = out / "truth" / "summary.json"
    if not summary_file.is_file():
        simulate_subjects(out, preset, n_subjects=4, seed=seed, snr=snr, progress=False)
    return json.loads(summary_file.read_text())


def presentations(train_file: str) -> int:
    """Presentations per training image (samples / distinct images) of a BData file."""
    from e2e_recon.data.bdata import BData
    from e2e_recon.data.labels import stimulus_ids_of

    ids = np.asarray(stimulus_ids_of(BData(train_file)))
    return max(1, round(len(ids) / len(np.unique(ids))))


def train_run(preset: str, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """Train one run (or reuse a finished one in ``--work-dir``); its iterations, seconds
    and why it stopped."""
    from e2e_recon.config import load_config
    from e2e_recon.train.loop import train

    record = run_dir / "benchmark_run.json"
    if record.is_file() and (run_dir / "generator.pt").is_file():
        return json.loads(record.read_text())
    started = time.perf_counter()
    summary = train(load_config(preset, overrides), run_dir)
    info = {
        "iterations": summary["iterations"],
        "seconds": round(time.perf_counter() - started, 1),
        "stop_reason": summary.get("stop_reason"),
    }
    record.write_text(json.dumps(info))
    return info


def common_overrides(exp: dict[str, Any], args: argparse.Namespace, seed: int) -> list[str]:
    """What every run of one experiment shares: images, device, seed, the stopping caps."""
    out = [
        f"data.images_dir='{exp['images_dir']}'",
        "train.device=cpu",
        "train.grid_every_iters=0",
        f"train.seed={seed}",
        f"train.max_minutes={args.minutes}",
    ]
    return out + ([f"train.iters={args.max_iters}"] if args.max_iters else []) + args.set


def reconstruct_runs(
    runs: dict[str, Path], subject: str, test_file: str, out: Path, ridge_from: Path | None
) -> dict[str, Any]:
    """Reconstruct ``subject``'s test set with each run (and a ridge fitted on the training
    set of the run ``ridge_from``, with its geometry and statistics); evaluate everything."""
    import torch

    from e2e_recon.config import load_config
    from e2e_recon.data.dataset import load_test_set
    from e2e_recon.data.geometry import ImageGeometry, write_geometry
    from e2e_recon.evaluate.evaluate import evaluate_recon
    from e2e_recon.recon.pipeline import fit_ridge, ridge_reconstruct
    from e2e_recon.recon.reconstruct import load_recon_models, reconstruct, write_index
    from e2e_recon.train.setup import load_data

    cfg = load_config(next(iter(runs.values())) / "config.yaml")
    d = cfg.data
    for method, run_dir in runs.items():
        model = load_recon_models(run_dir, subject=subject)[0]
        model.method = method
        assert model.norm is not None
        test = load_test_set(test_file, d.images_dir, d.roi, model.norm, d.image_size_px)
        reconstruct([model], [test], out, torch.device("cpu"))
    geometry = ImageGeometry.from_config(cfg, "the benchmark's runs")
    write_geometry(out, geometry)
    if ridge_from is not None:
        ridge_cfg = load_config(ridge_from / "config.yaml")
        training = load_data(ridge_cfg)
        test = load_test_set(test_file, d.images_dir, d.roi, training.norm, d.image_size_px)
        write_index(out, ridge_reconstruct(fit_ridge(training, geometry), [test], out))
    return evaluate_recon(out, Path(d.images_dir), resolution_px=None, device="cpu")


def per_image(recon_dir: Path, tag: str) -> dict[str, dict[str, dict[str, float]]]:
    """``{method: {metric: {tag/stimulus: score}}}`` of the natural set."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    with (recon_dir / "per_image.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["set"] != "natural":
                continue
            key = f"{tag}/{row['stimulus_name']}"
            for metric, value in row.items():
                if metric in ID_COLUMNS:
                    continue
                number = float(value) if value not in ("", None) else float("nan")
                out.setdefault(row["method"], {}).setdefault(metric, {})[key] = number
    return out


def merge(pool: dict, scores: dict) -> None:
    """Add one recon folder's per-image scores to a pool of several seeds."""
    for method, metrics in scores.items():
        for metric, values in metrics.items():
            pool.setdefault(method, {}).setdefault(metric, {}).update(values)


def paired(pool: dict, pairs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Pooled paired differences ``first - second`` of every metric, with intervals."""
    from e2e_recon.evaluate.paired import paired_difference

    out: dict[str, Any] = {}
    for first, second in pairs:
        if first not in pool or second not in pool:
            continue
        scores = {}
        for metric, values in pool[first].items():
            other = pool[second].get(metric, {})
            keys = sorted(set(values) & set(other))
            a = np.array([values[k] for k in keys])
            b = np.array([other[k] for k in keys])
            scores[metric] = paired_difference(a, b, n_boot=1000)
        out[f"{first} - {second}"] = scores
    return out


def means(pool: dict) -> dict[str, dict[str, float]]:
    """Mean of each method's per-image scores in the pool (NaN left out)."""
    return {
        method: {m: round(float(np.nanmean(list(v.values()))), 4) for m, v in metrics.items()}
        for method, metrics in pool.items()
    }


def verdict(summary: dict[str, Any]) -> dict[str, Any]:
    """The goal's three tests on one size's pooled figures (None where a figure is missing),
    and the same margins for the new subject's own full-data model: where that model, with
    every sample of the subject, does not clear them either, no adaptation is expected to."""
    pairs, means_ = summary["paired"], summary["means"]

    def beats(name: str, metric: str) -> bool | None:
        diff = pairs.get(name, {}).get(metric)
        return (
            None if diff is None else bool(diff["mean"] >= MARGINS[metric] and diff["ci_low"] > 0)
        )

    full = means_.get("full", {}).get("pixid")
    adapted = means_.get("adapted", {}).get("pixid")
    ratio = None if not full or adapted is None else round(adapted / full, 4)
    return {
        "pixid_vs_ridge_met": beats("adapted - ridge", "pixid"),
        "lite2_head_vs_ridge_met": beats("adapted - ridge", "effnet-lite2/head"),
        "pixid_fraction_of_full": ratio,
        "fraction_met": None if ratio is None else ratio >= 0.95,
        "full_data_model": {
            "pixid_vs_ridge_met": beats("full - ridge", "pixid"),
            "lite2_head_vs_ridge_met": beats("full - ridge", "effnet-lite2/head"),
        },
    }


def pairs_of(methods: list[str]) -> tuple[tuple[str, str], ...]:
    """Every adapted generator against each reference; scratch and the full-data model
    against the ridge."""
    adapted = [m for m in methods if m.startswith("adapted")]
    return (*((a, r) for a in adapted for r in REFERENCES), ("scratch", "ridge"), ("full", "ridge"))


def new_subject(
    exp: dict[str, Any], root: Path, common: list[str], samples: int, variants: dict
) -> tuple[Path, dict[str, Any]]:
    """Adapted (each variant), scratch and ridge on ``samples`` of the new subject, and
    the subject's full-data model."""
    files = exp["subjects"][NEW]["files"]
    n_images = max(1, samples // presentations(files["training"]))
    data = [f"data.train_fmri='{files['training']}'", f"data.train_images={n_images}"]
    source = f"train.adapt_from='{root / 'shared'}'"
    info: dict[str, Any] = {"images": n_images}
    runs = {}
    for name, overrides in variants.items():
        method = "adapted" if not name else f"adapted-{name}"
        runs[method] = root / f"{method}-{samples}"
        overrides = [o.replace("{runs}", str(root)) for o in overrides]
        info[method] = train_run("adapt", runs[method], [*common, *data, source, *overrides])
    info["scratch"] = train_run("small", root / f"scratch-{samples}", [*common, *data])
    runs |= {"scratch": root / f"scratch-{samples}", "full": root / "full"}
    recon = root / f"recon-{samples}"
    reconstruct_runs(runs, NEW, files["test"], recon, ridge_from=runs["scratch"])
    return recon, info


def own_subjects(
    exp: dict[str, Any], root: Path, common: list[str], seed: int
) -> tuple[dict, dict]:
    """The shared generator against one ``small`` model per source subject, on each one's
    test set: per-image scores (tagged by subject) and the runs' timings."""
    pool: dict = {}
    info = {}
    for subject in SOURCES:
        files = exp["subjects"][subject]["files"]
        single = root / f"single-{subject}"
        info[subject] = train_run(
            "small", single, [*common, f"data.train_fmri='{files['training']}'"]
        )
        recon = root / f"own-{subject}"
        runs = {"shared": root / "shared", "single": single}
        reconstruct_runs(runs, subject, files["test"], recon, ridge_from=None)
        merge(pool, per_image(recon, f"{seed}/{subject}"))
    return pool, info


def variants(args: argparse.Namespace) -> dict[str, list[str]]:
    """The adapt preset as it is (name "") and each ``--adapt-variant NAME=KEY=VALUE,...``."""
    out: dict[str, list[str]] = {"": []}
    for item in args.adapt_variant:
        name, _, rest = item.partition("=")
        out[name] = [o for o in rest.split(",") if o]
    return out


def run_family(root: Path, family: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every seed of one family: the runs, the pooled scores and the paired differences."""
    pools: dict[int, dict] = {n: {} for n in args.samples}
    own_pool: dict = {}
    per_seed = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        exp = experiment(root, family, seed)
        work = root / f"{family}-seed{seed}-runs"  # finished runs are reused
        common = common_overrides(exp, args, seed)
        sources = ", ".join(f"'{exp['subjects'][s]['files']['training']}'" for s in SOURCES)
        shared = train_run(
            "shared", work / "shared", [*common, f"data.train_fmri_subjects=[{sources}]"]
        )
        new_train = exp["subjects"][NEW]["files"]["training"]
        full = train_run("small", work / "full", [*common, f"data.train_fmri='{new_train}'"])
        seed_info: dict[str, Any] = {"seed": seed, "shared": shared, "full": full}
        if args.own_subjects:  # first: a variant may adapt from {runs}/single-sub-01
            pool, info = own_subjects(exp, work, common, seed)
            merge(own_pool, pool)
            seed_info["own_subjects"] = info
        for samples in args.samples:
            recon, info = new_subject(exp, work, common, samples, variants(args))
            merge(pools[samples], per_image(recon, str(seed)))
            seed_info[f"samples_{samples}"] = info
        per_seed.append(seed_info)
    out: dict[str, Any] = {}
    for n in args.samples:
        pairs = pairs_of(list(pools[n]))
        out[f"samples_{n}"] = {"means": means(pools[n]), "paired": paired(pools[n], pairs)}
        out[f"samples_{n}"]["goal"] = verdict(out[f"samples_{n}"])
    if own_pool:
        out["own_subjects"] = {
            "means": means(own_pool),
            "paired": paired(own_pool, (("shared", "single"),)),
        }
    out["runs"] = per_seed
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--family", action="append", default=[],
        help="project (small at SNR 0.25) or any simulate preset, e.g. prf-mixed-800x2 "
        "(repeatable; default: project, prf-mixed-800x2)",
    )  # fmt: skip
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument(
        "--samples", type=lambda s: [int(x) for x in s.split(",")], default=[90, 300, 1000],
        help="training samples of the new subject, comma-separated (default 90,300,1000)",
    )  # fmt: skip
    parser.add_argument("--minutes", type=float, default=5.0, help="at most this per run")
    parser.add_argument("--max-iters", type=int, default=0, help="at most this per run (0: preset)")
    parser.add_argument("--own-subjects", action="store_true", help="also shared vs single")
    parser.add_argument(
        "--adapt-variant", action="append", default=[],
        help="NAME=KEY=VALUE,... : also adapt with these overrides (method adapted-NAME); "
        "{runs} stands for the seed's runs folder, e.g. one=train.adapt_from={runs}/single-sub-01 "
        "(with --own-subjects) adapts from one source subject's own model",
    )  # fmt: skip
    parser.add_argument(
        "--set", action="append", default=[],
        help="KEY=VALUE for every run, e.g. data.voxel_selection=image-r2 (repeatable)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=None, help="keep subjects and runs here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    from e2e_recon.device import cpu_info

    torch.set_num_threads(args.threads)
    tmp = None if args.work_dir else tempfile.TemporaryDirectory()
    root = args.work_dir or Path(tmp.name)  # type: ignore[union-attr]
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    families = args.family or list(FAMILIES)
    results = {family: run_family(root, family, args) for family in families}
    print(
        json.dumps(
            {
                "benchmark": "transfer",
                "goal": GOAL,
                "seeds": args.seeds,
                "samples": args.samples,
                "minutes_per_run": args.minutes,
                "max_iters": args.max_iters,
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
