"""A run with voxel selection: the generator, its saved statistics, the test patterns and
the fair ridge all read the kept voxels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_train_subject import tiny_config

from e2e_recon.data.dataset import load_test_set
from e2e_recon.nets.loading import load_generator
from e2e_recon.recon import pipeline
from e2e_recon.recon.baselines import RidgeDecoder
from e2e_recon.recon.reconstruct import load_recon_models
from e2e_recon.train.loop import train


@pytest.mark.slow
def test_a_run_keeps_half_its_voxels_from_training_to_the_ridge(
    subject: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    cfg = tiny_config(subject, "data.voxel_selection=image-r2", "data.voxel_fraction=0.5",
                      f"data.test_fmri=['{subject['test']}']", "train.iters=2")  # fmt: skip
    train(cfg, run)
    log = (run / "log.txt").read_text()
    assert "voxel selection: 24 of 48 voxels kept, fraction 0.5" in log
    assert load_generator(run / "generator.pt").n_voxels == 24
    (model,) = load_recon_models(run)
    assert model.norm is not None and model.norm.kept_columns is not None
    kept = model.norm.kept_columns
    assert kept.shape == (48,) and kept.sum() == 24
    test = load_test_set(subject["test"], subject["images"], "ROI_VC = 1", model.norm, 64)
    assert test.voxels.shape[1] == 24  # the kept columns of the test file
    fitted: list[int] = []
    original = RidgeDecoder.fit

    def fit(
        self: RidgeDecoder, voxels: np.ndarray, images: np.ndarray, groups: np.ndarray
    ) -> RidgeDecoder:
        fitted.append(voxels.shape[1])
        return original(self, voxels, images, groups)

    monkeypatch.setattr(RidgeDecoder, "fit", fit)
    recon = pipeline.reconstruct_run(run, ridge=True, device="cpu")
    assert fitted == [24]  # the fair ridge on the generator's voxels
    methods = {line.split(",")[0] for line in (recon / "index.csv").read_text().splitlines()[1:]}
    assert methods == {"e2e", "ridge"}

    # A test file and the training file by path (every voxel of the ROI): the ridge reads
    # the model's kept voxels of the training file too.
    out = tmp_path / "recon-by-path"
    pipeline.reconstruct_cli(
        str(run), [subject["test"]], subject["train"], "", None, out, True, subject["images"], "cpu"
    )
    assert fitted == [24, 24]
    methods = {line.split(",")[0] for line in (out / "index.csv").read_text().splitlines()[1:]}
    assert methods == {"e2e", "ridge"}
