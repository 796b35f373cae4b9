"""Which adaptation recipe: frozen only or frozen then fine-tuned; ridge or activation-fit start.

A small simulated multi-subject experiment. The project's simulator writes ``sub-01``
(``small`` preset: 800 training images x 2 presentations, 40 test images x 10, 64 px,
3,000 voxels); ``sub-02``, ``sub-03`` and the new subject ``sub-04`` are derived from it
as a test helper derives them (tests/train/tiny_multi_subject.py): a fixed random linear
mixing of sub-01's voxels into a voxel count of their own plus fresh noise, the same
images. A shared generator is trained on sub-01 to sub-03 (``--config shared``,
``--shared-iters`` iterations); sub-04, limited to ``--new-images`` training images
(``data.train_images``), is then adapted from that run with each recipe (``--config
adapt``, ``--adapt-iters`` iterations each, the fine-tuned recipes after
``--freeze-iters`` frozen ones), trained from scratch with the ``small`` recipe for as
many iterations, and decoded by the ridge pixel decoder. Iteration counts, not minutes,
so that a busy machine compares the recipes at equal training. Sizes are smaller than
the presets' (``--model``) so that a CPU runs them in minutes. Every model reconstructs
sub-04's natural test set; pairwise pixel identification and PixCorr are reported with
bootstrap intervals over test images. Prints one JSON object.

    .venv/bin/python benchmarks/adapt_choice.py                       # 20-30 CPU minutes
    .venv/bin/python benchmarks/adapt_choice.py --new-images 300 --seed 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Recipes compared: name -> overrides on top of the adapt preset.
RECIPES = {
    "ridge_frozen": ["train.adapt_init=ridge", "train.adapt_finetune_lr_scale=0"],
    "ridge_finetune": ["train.adapt_init=ridge", "train.adapt_finetune_lr_scale=0.1"],
    "activations_frozen": ["train.adapt_init=activations", "train.adapt_finetune_lr_scale=0"],
    "activations_finetune": [
        "train.adapt_init=activations", "train.adapt_finetune_lr_scale=0.1",
    ],
}  # fmt: skip
DERIVED = {"sub-02": 2600, "sub-03": 3300, "sub-04": 2900}
#: Smaller than the presets' 64 px, so that a shared CPU runs thousands of iterations.
SIZES = [
    "data.image_size_px=36", "data.crop_px=32", "model.output_size_px=32",
    "model.fc_width=256", "model.base_channels=32",
]  # fmt: skip


def derive(source: Path, name: str, n_voxels: int, seed: int, how: str = "orthogonal") -> Path:
    """``name``'s copy of a BData file: voxels mixed into ``n_voxels`` plus fresh noise.

    ``orthogonal``: a rotation of sub-01's voxels (every new voxel mixes all of them);
    ``subset``: ``n_voxels`` of sub-01's voxels (repeated where more), in a random order.
    """
    from e2e_recon.data.bdata import BData
    from e2e_recon.data.labels import stimulus_ids_of

    rng = np.random.default_rng(seed)
    bd = BData(source)
    voxels = np.asarray(bd.select("ROI_VC = 1"), dtype=np.float64)  # (N, V)
    ids = np.asarray(stimulus_ids_of(bd), dtype=np.float64)
    # Orthonormal columns (or rows, for more voxels than sub-01's): a well-conditioned mixing
    # that keeps sub-01's information, so the subjects differ by their voxels and noise only.
    if how == "subset":
        mixed = voxels[:, rng.choice(voxels.shape[1], n_voxels, replace=n_voxels > len(voxels.T))]
    else:
        q, _ = np.linalg.qr(rng.normal(size=(max(voxels.shape[1], n_voxels),) * 2))
        mixed = voxels @ q[: voxels.shape[1], :n_voxels]  # (N, V'), orthonormal mixing
    mixed += 0.3 * mixed.std() * rng.normal(size=mixed.shape)
    out = BData()
    out.add(mixed, "VoxelData")
    n = len(ids)
    out.add(np.stack([np.arange(n, dtype=float), ids], axis=1), "Label")
    out.add(ids, "stimulus_id")
    out.add(np.arange(n, dtype=float) // 8, "Run")
    out.add(np.ones(n), "Session")
    out.add_metadata("ROI_VC", np.ones(n_voxels), "1 = VC", where="VoxelData")
    path = source.with_name(source.name.replace("sub-01", name, 1))
    out.save(path)
    return path


def make_experiment(root: Path, seed: int, how: str = "orthogonal") -> dict[str, Any]:
    """Simulate sub-01 and derive the others; return files by subject and the images."""
    from e2e_recon.sim.subject import simulate_subject

    made = root / "sim" / "truth" / "summary.json"
    summary = (
        json.loads(made.read_text())
        if made.is_file()
        else simulate_subject(root / "sim", preset="small", seed=seed, snr=0.25, progress=False)
    )
    files = summary["files"]
    train = {"sub-01": Path(files["training"])}
    test = {"sub-01": Path(files["test"])}
    for index, (name, count) in enumerate(DERIVED.items()):
        train[name] = derive(train["sub-01"], name, count, 1000 * seed + index, how)
        test[name] = derive(test["sub-01"], name, count, 1000 * seed + index, how)
    return {"train": train, "test": test, "images": Path(summary["images_dir"])}


def run(preset: str, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    from e2e_recon.config import load_config
    from e2e_recon.train.loop import train

    started = time.perf_counter()
    summary = train(load_config(preset, overrides), run_dir)
    return {"iterations": summary["iterations"], "seconds": round(time.perf_counter() - started)}


def score(exp: dict[str, Any], runs: dict[str, Path], ridge_cfg: Path, out: Path) -> dict:
    """Reconstruct sub-04's test set with each run (and the ridge decoder); evaluate."""
    import torch

    from e2e_recon.config import load_config
    from e2e_recon.data.dataset import load_test_set
    from e2e_recon.data.geometry import ImageGeometry, write_geometry
    from e2e_recon.evaluate.evaluate import evaluate_recon
    from e2e_recon.recon.pipeline import fit_ridge, ridge_reconstruct
    from e2e_recon.recon.reconstruct import load_recon_models, reconstruct, write_index
    from e2e_recon.train.setup import load_data

    cfg = load_config(ridge_cfg / "config.yaml")
    d = cfg.data
    size = d.image_size_px
    for name, run_dir in runs.items():
        model = load_recon_models(run_dir)[0]
        model.method = name
        assert model.norm is not None
        test = load_test_set(exp["test"]["sub-04"], d.images_dir, d.roi, model.norm, size)
        reconstruct([model], [test], out, torch.device("cpu"))
    training = load_data(cfg)
    test = load_test_set(exp["test"]["sub-04"], d.images_dir, d.roi, training.norm, size)
    geometry = ImageGeometry.from_config(cfg, "the benchmark's runs")
    write_index(out, ridge_reconstruct(fit_ridge(training, geometry), [test], out))
    write_geometry(out, geometry)
    return evaluate_recon(out, exp["images"], resolution_px=None, feature_nets=(), device="cpu",
                          n_boot=1000)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--new-images", type=int, default=300)
    parser.add_argument("--shared-iters", type=int, default=1200)
    parser.add_argument("--adapt-iters", type=int, default=600)
    parser.add_argument("--freeze-iters", type=int, default=100)
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--derive", choices=("orthogonal", "subset"), default="orthogonal")
    parser.add_argument(
        "--model", action="append", default=None,
        help="overrides of the sizes (default: 32 px output, fc 256, 32 channels)",
    )  # fmt: skip
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="adapt_choice_"))
    exp = make_experiment(root, args.seed, args.derive)
    sizes = args.model if args.model is not None else SIZES
    common = [f"data.images_dir='{exp['images']}'", "train.device=cpu", "train.grid_every_iters=0",
              f"train.seed={args.seed}", *sizes]  # fmt: skip
    sources = ", ".join(f"'{exp['train'][s]}'" for s in ("sub-01", "sub-02", "sub-03"))
    timing = {"shared": run("shared", root / "shared", [
        *common, f"data.train_fmri_subjects=[{sources}]",
        f"train.iters={args.shared_iters}",
    ])}  # fmt: skip
    new = [
        *common, f"data.train_fmri='{exp['train']['sub-04']}'",
        f"data.train_images={args.new_images}", f"train.iters={args.adapt_iters}",
    ]  # fmt: skip
    runs = {}
    for name, overrides in RECIPES.items():
        extra = [f"train.adapt_from='{root / 'shared'}'",
                 f"train.adapt_freeze_iters={args.freeze_iters}", *overrides]  # fmt: skip
        timing[name] = run("adapt", root / name, [*new, *extra])
        runs[name] = root / name
    timing["scratch"] = run("small", root / "scratch", new)
    runs["scratch"] = root / "scratch"
    metrics = score(exp, runs, root / "scratch", root / "recon")
    result = {"seed": args.seed, "derive": args.derive, "new_images": args.new_images,
              "freeze_iters": args.freeze_iters, "runs": timing}  # fmt: skip
    result["metrics"] = _brief(metrics)
    print(json.dumps(result, indent=1))


def _brief(metrics: dict[str, Any]) -> dict[str, Any]:
    """Pixel identification and PixCorr of each method: [mean, interval low, high]."""
    out: dict[str, Any] = {}
    for row in metrics.get("results", []):
        scores = row.get("scores", {})
        out[row["method"]] = {
            key: [None if scores[key][k] is None else round(scores[key][k], 4)
                  for k in ("mean", "ci_low", "ci_high")]
            for key in ("pixid", "pixcorr") if key in scores
        }  # fmt: skip
    return out


if __name__ == "__main__":
    main()
