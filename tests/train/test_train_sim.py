"""Training on the project's simulated subject (``tiny`` preset): train, snapshot, resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from e2e_recon.config import load_config, with_overrides
from e2e_recon.device import torch_threads
from e2e_recon.nets.loading import load_generator
from e2e_recon.train import checkpoint as ckpt_io
from e2e_recon.train.loop import train
from e2e_recon.train.stats import read_stats


@pytest.mark.slow
def test_tiny_simulated_subject_trains_snapshots_and_resumes(
    tiny_subject: dict[str, Any], tiny_run_overrides: tuple[str, ...], tmp_path: Path
) -> None:
    summary = tiny_subject
    cfg = load_config(
        "paper",
        [
            f"data.train_fmri='{summary['files']['training']}'",
            f"data.test_fmri=['{summary['files']['test']}']",
            f"data.images_dir='{Path(summary['images_dir']) / 'training'}'",
            *tiny_run_overrides,
            "data.image_size_px=64",
            "data.crop_px=63",  # the smallest crop the discriminator accepts
            "train.iters=4",
            "train.snapshot_every_iters=2",
        ],
    )
    run_dir = tmp_path / "run"
    with torch_threads(1):
        first = train(cfg, run_dir)
        resumed = train(with_overrides(cfg, ["train.iters=6"]), run_dir, resume=True)
    assert first["iterations"] == 4 and resumed["start_iteration"] == 4
    assert resumed["iterations"] == 6
    assert [r["iteration"] for r in read_stats(run_dir / "stats.jsonl")] == [1, 2, 3, 4, 5, 6]
    assert ckpt_io.load_checkpoint(run_dir / "checkpoints" / "latest.pt")["iteration"] == 6
    generator = load_generator(run_dir / "generator.pt")
    assert generator.n_voxels == summary["n_voxels"]
