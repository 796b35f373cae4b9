"""The generator and ridge compared fairly: one geometry, one set of statistics, paired figures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from e2e_recon.cli import app
from e2e_recon.config import load_config, with_overrides
from e2e_recon.data.geometry import GEOMETRY_FILE, ImageGeometry, read_geometry, write_geometry
from e2e_recon.data.images import rgb_to_bgr_uint8
from e2e_recon.errors import DataError
from e2e_recon.evaluate import recon_files
from e2e_recon.evaluate.paired import paired_comparisons, paired_difference
from e2e_recon.recon import pipeline
from e2e_recon.recon.baselines import RidgeDecoder
from e2e_recon.recon.reconstruct import load_recon_models, write_index
from e2e_recon.recon.records import check_geometry
from e2e_recon.train.setup import load_data
from e2e_recon.train.validation import Validator

runner = CliRunner()


def _capture_ridge_fit(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Record what RidgeDecoder.fit is given, then fit as usual."""
    seen: dict[str, Any] = {}
    original = RidgeDecoder.fit

    def fit(self: RidgeDecoder, voxels: Any, images: Any, groups: Any) -> Any:
        seen.update(voxels=np.array(voxels), images=np.array(images), groups=np.array(groups))
        return original(self, voxels, images, groups)

    monkeypatch.setattr(RidgeDecoder, "fit", fit)
    return seen


@pytest.mark.slow
def test_ridge_validation_and_evaluation_see_the_same_target_pixels(
    tiny_run: Path, tiny_subject: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = with_overrides(load_config(tiny_run / "config.yaml"), ["data.val_images=3"])
    geometry = ImageGeometry.from_config(cfg)
    training = load_data(cfg)
    seen = _capture_ridge_fit(monkeypatch)
    pipeline.fit_ridge(training, geometry, training.norm)
    ridge_targets = seen["images"]  # (M, 64, 64, 3) BGR
    # The generator's targets: the centre crops its validation compares with.
    validator = Validator(training.val, cfg.data.crop_px, ())
    val_crops = geometry.target_crops(np.asarray(training.val.images))
    np.testing.assert_array_equal(validator.targets_rgb, val_crops[..., ::-1].astype(np.float32))
    np.testing.assert_array_equal(ridge_targets, geometry.target_crops(np.asarray(training.images)))
    # What evaluate scores against, prepared from the image files by the recorded geometry.
    paths = recon_files.find_stimuli(Path(cfg.data.images_dir), list(training.stimulus_names))
    stimuli = recon_files.load_stimuli(
        [paths[n] for n in training.stimulus_names], 64, geometry.image_size_px, geometry.crop_px
    )
    np.testing.assert_array_equal(rgb_to_bgr_uint8(stimuli.astype(np.uint8)), ridge_targets)
    # The validation images are not among the ridge's training images.
    assert not set(training.stimulus_names) & set(training.val.stimulus_names)


@pytest.mark.slow
def test_ridge_uses_the_generators_images_and_statistics(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    # A validation split in the config: the ridge must leave those images out too.
    cfg = with_overrides(load_config(run / "config.yaml"), ["data.val_images=3"])
    seen = _capture_ridge_fit(monkeypatch)
    pipeline.reconstruct_run(run, cfg, ridge=True, device="cpu")
    training = load_data(cfg)
    (model,) = load_recon_models(run)
    assert model.norm is not None  # the generator's statistics (all images: trained without val)
    raw = training.voxels * training.norm.std + training.norm.mean
    expected = (raw - model.norm.mean) / model.norm.std
    np.testing.assert_allclose(seen["voxels"], expected, rtol=1e-4, atol=1e-4)
    assert len(seen["images"]) == len(training.images)
    recorded = read_geometry(run / "recon")
    assert recorded is not None
    assert (recorded.image_size_px, recorded.crop_px) == (cfg.data.image_size_px, 64)
    ridge_record = json.loads((run / "recon" / "ridge.json").read_text())
    assert ridge_record["alpha"] > 0 and "average of its presentations" in ridge_record["selection"]


@pytest.mark.slow
def test_evaluate_reads_the_recorded_geometry(
    tiny_run: Path, tiny_subject: dict[str, Any], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert runner.invoke(app, ["reconstruct", "--generator", str(run), "--ridge"]).exit_code == 0
    recon, images = run / "recon", tiny_subject["images_dir"]
    base = ["evaluate", "--recon", str(recon), "--images", images, "--bootstrap", "50",
            "--feature-net", "none"]  # fmt: skip
    recorded = runner.invoke(app, base)
    assert recorded.exit_code == 0, recorded.output
    assert "note:" not in recorded.output
    assert "Paired differences" in recorded.output and "e2e - ridge" in recorded.output
    first = json.loads((recon / "metrics.json").read_text())
    explicit = runner.invoke(app, [*base, "--image-size-px", "72", "--crop-px", "64"])
    assert explicit.exit_code == 0, explicit.output
    second = json.loads((recon / "metrics.json").read_text())
    assert first["results"] == second["results"]
    assert first["comparisons"] == second["comparisons"]
    assert first["settings"]["geometry"]["crop_px"] == 64
    assert first["baselines"]["ridge"]["alpha"] > 0
    other = runner.invoke(app, [*base, "--image-size-px", "80"])
    assert other.exit_code == 0, other.output
    assert "note: image_size_px 72" in " ".join(other.output.split())
    paired = {(c["set"], c["method"], c["baseline"]) for c in first["comparisons"]}
    assert paired == {(s, "e2e", "ridge") for s in ("natural", "shapes", "letters")}


def test_without_a_record_evaluate_says_it_uses_the_papers_geometry(tmp_path: Path) -> None:
    from e2e_recon.evaluate.evaluate import recorded_geometry

    geometry, notices = recorded_geometry(tmp_path)
    assert (geometry.image_size_px, geometry.crop_px) == (248, 227)
    assert len(notices) == 1 and "paper" in notices[0]
    write_geometry(tmp_path, ImageGeometry(72, 64, source="test"))
    geometry, notices = recorded_geometry(tmp_path)
    assert (geometry.image_size_px, geometry.crop_px, notices) == (72, 64, [])
    (tmp_path / GEOMETRY_FILE).write_text("{not json")
    with pytest.raises(DataError, match="--crop-px"):
        recorded_geometry(tmp_path)


def test_a_folder_refuses_reconstructions_of_another_geometry(tmp_path: Path) -> None:
    row = {"method": "ridge", "set": "natural", "stimulus_id": "1.000000", "stimulus_name": "a",
           "n_trials": "1", "mat": "", "tif": "", "png": "a.png"}  # fmt: skip
    write_index(tmp_path, [row])
    write_geometry(tmp_path, ImageGeometry(72, 64))
    check_geometry(tmp_path, ImageGeometry(72, 64), {"e2e"})  # same targets: fine
    check_geometry(tmp_path, ImageGeometry(248, 227), {"ridge"})  # replaces all its rows: fine
    with pytest.raises(DataError, match="another --out"):
        check_geometry(tmp_path, ImageGeometry(248, 227), {"e2e"})
    with pytest.raises(DataError, match="crop"):
        ImageGeometry(64, 72)


def test_paired_difference_resamples_pairs_together() -> None:
    rng = np.random.default_rng(0)
    difficulty = rng.uniform(0.5, 1.0, size=40)  # shared by both methods
    first = difficulty + 0.02 + 0.005 * rng.normal(size=40)
    second = difficulty
    paired = paired_difference(first, second, n_boot=500)
    assert paired["mean"] == pytest.approx(float(np.mean(first - second)), abs=1e-6)
    assert paired["excludes_zero"] and paired["ci_low"] > 0
    assert paired["wins"] == pytest.approx(float(np.mean(first > second)))
    assert paired["n_images"] == 40
    tie = paired_difference(second, second, n_boot=50)
    assert tie["mean"] == 0 and tie["ties"] == 1 and not tie["excludes_zero"]
    nan = paired_difference(np.array([np.nan, 1.0]), np.array([0.5, 0.5]), n_boot=50)
    assert nan["n_images"] == 1


def test_paired_comparisons_align_images_by_name() -> None:
    scores = {
        ("natural", "e2e"): (("a", "b", "c"), {"pixid": np.array([1.0, 0.5, 0.75])}),
        ("natural", "ridge"): (("c", "a", "b"), {"pixid": np.array([0.5, 0.5, 0.5])}),
        ("shapes", "e2e"): (("x", "y"), {"pixid": np.array([1.0, 1.0])}),
    }
    (row,) = paired_comparisons(scores, n_boot=50)
    assert (row["set"], row["method"], row["baseline"]) == ("natural", "e2e", "ridge")
    assert row["scores"]["pixid"]["mean"] == pytest.approx(0.25)
    assert row["scores"]["pixid"]["wins"] == pytest.approx(2 / 3)
