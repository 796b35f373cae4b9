"""The test-time procedure and its files, on a run trained on the tiny simulated subject."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from typer.testing import CliRunner

from e2e_recon.cli import app
from e2e_recon.config import load_config
from e2e_recon.data.dataset import load_test_set
from e2e_recon.data.geometry import read_geometry
from e2e_recon.data.images import display_image
from e2e_recon.errors import DataError
from e2e_recon.nets.generator import Generator
from e2e_recon.recon.reconstruct import (
    ReconModel,
    generate,
    load_recon_models,
    read_index,
    scale_factors,
)

runner = CliRunner()
pytestmark = pytest.mark.slow


def test_display_image_clips_the_published_extremes() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(128, 20, size=(100, 100, 3))
    image[0, 0, 0], image[0, 1, 0] = 1e6, -1e6  # two outliers: 2 of 30,000 values
    shown = display_image(image, clip_percent=0.04)
    assert shown.dtype == np.uint8
    assert shown.min() == 0 and shown.max() == 255
    # the outliers are clipped, so the bulk keeps its spread instead of collapsing to grey
    assert shown.std() > 30


def test_scale_factors() -> None:
    n = np.array([24, 4, 1])
    np.testing.assert_allclose(scale_factors(n, "sqrt_n"), [np.sqrt(24), 2.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(scale_factors(n, "4.9"), [4.9, 4.9, 4.9], rtol=1e-6)
    with pytest.raises(DataError, match="sqrt_n"):
        scale_factors(n, "big")


def test_generate_applies_the_centre_crop_and_rgb_conversion() -> None:
    torch.manual_seed(0)
    net = Generator(n_voxels=5, fc_width=16, output_size_px=64, base_channels=8)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    images = generate(ReconModel("e2e", net, None, 60), np.zeros((3, 5), np.float32), "cpu")  # type: ignore[arg-type]
    assert images.shape == (3, 60, 60, 3)
    # a zero output in Caffe space is the mean colour: R 123, G 117, B 104
    np.testing.assert_allclose(images[0, 0, 0], [123.0, 117.0, 104.0])


def test_reconstruct_evaluate_report_through_the_cli(
    tiny_run: Path, tiny_subject: dict[str, Any], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    result = runner.invoke(app, ["reconstruct", "--generator", str(run), "--ridge"])
    assert result.exit_code == 0, result.output
    rows = read_index(run / "recon" / "index.csv")
    assert {(r["method"], r["set"]) for r in rows} == {
        (m, s) for m in ("e2e", "ridge") for s in ("natural", "shapes", "letters")
    }
    natural = [r for r in rows if r["set"] == "natural" and r["method"] == "e2e"]
    assert len(natural) == tiny_subject["sets"]["test"]["images"]
    assert {r["n_trials"] for r in natural} == {str(tiny_subject["sets"]["test"]["repetitions"])}
    gen_img = scipy.io.loadmat(run / "recon" / natural[0]["mat"])["gen_img"]
    assert gen_img.shape == (64, 64, 3)
    with Image.open(run / "recon" / natural[0]["tif"]) as tif:
        assert tif.size == (64, 64) and tif.mode == "RGB"
    assert (run / "recon" / natural[0]["png"]).is_file()

    images = tiny_subject["images_dir"]
    evaluated = runner.invoke(
        app,
        ["evaluate", "--recon", str(run / "recon"), "--images", images,
         "--image-size-px", "72", "--crop-px", "64", "--bootstrap", "50"],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    assert (run / "recon" / "metrics.json").is_file()
    assert (run / "recon" / "per_image.csv").is_file()
    reported = runner.invoke(app, ["report", str(run), "--grid-png", str(tmp_path / "g.png")])
    assert reported.exit_code == 0, reported.output
    assert (run / "report" / "index.html").stat().st_size > 10_000
    assert (tmp_path / "g.png").is_file()
    letters = runner.invoke(
        app, ["report", str(run), "--grid-png", str(tmp_path / "l.png"), "--grid-set", "letters"]
    )
    assert letters.exit_code == 0, letters.output
    assert (tmp_path / "l.png").read_bytes() != (tmp_path / "g.png").read_bytes()
    unknown = runner.invoke(
        app, ["report", str(run), "--grid-png", str(tmp_path / "x.png"), "--grid-set", "faces"]
    )
    assert unknown.exit_code == 2 and "faces" in unknown.output and "letters" in unknown.output
    assert not (tmp_path / "x.png").exists()


def test_scale_follows_the_number_of_trials(tiny_run: Path, tiny_subject: dict[str, Any]) -> None:
    cfg = load_config(tiny_run / "config.yaml")
    (model,) = load_recon_models(tiny_run)
    assert model.norm is not None and model.crop_px == cfg.data.crop_px
    test_set = load_test_set(tiny_subject["files"]["test"], None, cfg.data.roi, model.norm)
    n = int(test_set.n_trials[0])
    scaled = generate(model, test_set.voxels * np.sqrt(n), torch.device("cpu"))
    fixed = generate(model, test_set.voxels * 1.0, torch.device("cpu"))
    assert not np.allclose(scaled, fixed)


def test_snapshot_folder_reconstructs_with_every_snapshot(
    tiny_run: Path, tiny_subject: dict[str, Any], tmp_path: Path
) -> None:
    files = tiny_subject["files"]
    out = tmp_path / "recon"
    result = runner.invoke(
        app,
        ["reconstruct", "--generator", str(tiny_run / "checkpoints"),
         "--test-fmri", files["test"], "--train-fmri", files["training"], "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with (out / "index.csv").open() as f:
        methods = {row["method"] for row in csv.DictReader(f)}
    assert methods == {"e2e@snapshot_iter0000003", "e2e@snapshot_iter0000006"}


def test_voxel_count_mismatch_names_both_numbers(
    tiny_run: Path, tiny_subject: dict[str, Any], tmp_path: Path
) -> None:
    files = tiny_subject["files"]
    result = runner.invoke(
        app,
        ["reconstruct", "--generator", str(tiny_run / "generator.pt"),
         "--test-fmri", files["test"], "--train-fmri", files["training"],
         "--roi", "ROI_V1", "--out", str(tmp_path / "r")],
    )  # fmt: skip
    assert result.exit_code == 2
    n_vc, n_v1 = tiny_subject["roi_voxels"]["ROI_VC"], tiny_subject["roi_voxels"]["ROI_V1"]
    assert str(n_vc) in result.output and str(n_v1) in result.output


def test_released_model_without_statistics_needs_the_training_file(
    tiny_run: Path, tiny_subject: dict[str, Any], tmp_path: Path
) -> None:
    from e2e_recon.caffe.convert import module_to_blobs
    from e2e_recon.caffe.wire import write_caffemodel
    from e2e_recon.nets.loading import load_generator

    generator = load_generator(tiny_run / "generator.pt")
    caffemodel = write_caffemodel(tmp_path / "generator.caffemodel", module_to_blobs(generator))
    test_file = tiny_subject["files"]["test"]
    args = ["reconstruct", "--generator", str(caffemodel), "--test-fmri", test_file]
    missing = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert missing.exit_code == 2 and "--train-fmri" in missing.output
    ok = runner.invoke(
        app,
        [*args, "--train-fmri", tiny_subject["files"]["training"], "--out", str(tmp_path / "b")],
    )
    assert ok.exit_code == 0, ok.output
    assert len(read_index(tmp_path / "b" / "index.csv")) == tiny_subject["sets"]["test"]["images"]
    # No config in a .caffemodel: the geometry follows the model's own 64 px crop.
    geometry = read_geometry(tmp_path / "b")
    assert geometry is not None and (geometry.image_size_px, geometry.crop_px) == (70, 64)


def test_subject_resolves_files_from_the_data_home(
    tiny_run: Path, tiny_subject: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from e2e_recon.caffe.convert import module_to_blobs
    from e2e_recon.caffe.wire import write_caffemodel
    from e2e_recon.nets.loading import load_generator

    home = tmp_path / "home"
    (home / "fmri").mkdir(parents=True)
    for path in tiny_subject["files"].values():
        shutil.copy(path, home / "fmri")
    model_dir = home / "models" / "sub-01"
    model_dir.mkdir(parents=True)
    generator = load_generator(tiny_run / "generator.pt")
    write_caffemodel(model_dir / "generator.caffemodel", module_to_blobs(generator))
    monkeypatch.setenv("E2E_RECON_HOME", str(home))
    out = tmp_path / "recon"
    result = runner.invoke(app, ["reconstruct", "--subject", "sub-01", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {r["set"] for r in read_index(out / "index.csv")} == {"natural", "shapes", "letters"}
