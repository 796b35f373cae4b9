"""Greyscale stimuli end to end through the CLI: train, reconstruct, evaluate, report in grey.

The subject is the greyscale digits family of the pRF simulator (``e2e_recon.sim.prf``,
independent of the project simulator), at a tiny size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from e2e_recon.cli import app
from e2e_recon.data.colour import is_grey
from e2e_recon.data.geometry import read_geometry
from e2e_recon.device import torch_threads
from e2e_recon.recon.reconstruct import read_index
from e2e_recon.report.contents import load_grid, run_settings
from e2e_recon.sim.prf.subject import simulate_prf_subject

runner = CliRunner()
pytestmark = pytest.mark.slow


def _digits_subject(out: Path) -> dict[str, Any]:
    return simulate_prf_subject(
        out, family="digits", n_train=30, train_presentations=2, n_test=6,
        test_presentations=3, image_size_px=28, snr=1.0, n_voxels=120, seed=0,
    )  # fmt: skip


@pytest.fixture(scope="module")
def grey_run(tmp_path_factory: pytest.TempPathFactory, tiny_run_overrides: tuple[str, ...]) -> Path:
    root = tmp_path_factory.mktemp("grey")
    subject = _digits_subject(root / "subject")
    run = root / "run"
    args = [
        "train", "--config", "demo", "--run-dir", str(run),
        "--train-fmri", subject["files"]["training"], "--test-fmri", subject["files"]["test"],
        "--images", subject["images_dir"],
    ]  # fmt: skip
    for override in (*tiny_run_overrides, "data.val_images=3", "train.val_every_iters=3"):
        args += ["--set", override]
    with torch_threads(1):
        trained = runner.invoke(app, args)
        assert trained.exit_code == 0, trained.output
        rebuilt = runner.invoke(app, ["reconstruct", "--generator", str(run), "--ridge"])
        assert rebuilt.exit_code == 0, rebuilt.output
        evaluated = runner.invoke(
            app,
            ["evaluate", "--recon", str(run / "recon"), "--images", subject["images_dir"],
             "--bootstrap", "20", "--feature-net", "efficientnet-lite0"],
        )  # fmt: skip
        assert evaluated.exit_code == 0, evaluated.output
    return run


def test_auto_chose_grey_and_every_stage_recorded_it(grey_run: Path) -> None:
    config = yaml.safe_load((grey_run / "config.yaml").read_text())
    assert config["data"]["colour"] == "grey"
    assert "every training stimulus is greyscale" in (grey_run / "log.txt").read_text()
    blob = torch.load(grey_run / "generator.pt", weights_only=True)
    assert blob["arch"]["colour"] == "grey"
    geometry = read_geometry(grey_run / "recon")
    assert geometry is not None and geometry.colour == "grey"


def test_reconstructions_are_greyscale_images(grey_run: Path) -> None:
    rows = read_index(grey_run / "recon" / "index.csv")
    assert {r["method"] for r in rows} == {"e2e", "ridge"}
    for row in rows:
        with Image.open(grey_run / "recon" / row["png"]) as png:
            assert png.mode == "L" and png.size == (64, 64)
        gen_img = scipy.io.loadmat(grey_run / "recon" / row["mat"])["gen_img"]  # (64, 64, 3)
        assert is_grey(gen_img[None]) and np.ptp(gen_img) > 0


def test_metrics_are_scored_in_grey(grey_run: Path) -> None:
    metrics = json.loads((grey_run / "recon" / "metrics.json").read_text())
    assert metrics["settings"]["geometry"]["colour"] == "grey"
    scored = {r["method"]: r["scores"] for r in metrics["results"] if r["method"] != "chance"}
    assert set(scored) == {"e2e", "ridge"}
    for scores in scored.values():
        assert {"pixid", "pixcorr", "ssim"} <= set(scores)
        assert any(k.startswith("effnet-lite0/") for k in scores)  # grey in three channels
        assert all(s["mean"] is not None for s in scores.values())


def test_report_shows_grey_stimuli_and_reconstructions(grey_run: Path, tmp_path: Path) -> None:
    reported = runner.invoke(app, ["report", str(grey_run), "--grid-png", str(tmp_path / "g.png")])
    assert reported.exit_code == 0, reported.output
    (grid,) = load_grid(grey_run, run_settings(grey_run)).values()
    for label, images in grid.rows.items():
        assert images and all(im is not None and is_grey(im[None]) for im in images), label
