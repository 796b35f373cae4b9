"""simulate_subject: layout, names, BData content, bdpy round trip, determinism, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from e2e_recon.data.bdata import BData
from e2e_recon.data.labels import id_to_name
from e2e_recon.errors import ConfigError, DataError
from e2e_recon.sim import subject as subject_module
from e2e_recon.sim.presets import PRESETS, SimPreset
from e2e_recon.sim.subject import simulate_subject

pytestmark = pytest.mark.slow

PARTS = {
    "training": ("perceptionNaturalImageTraining", "training", 60, 2),
    "test": ("perceptionNaturalImageTest", "test", 10, 4),
    "artificial": ("perceptionArtificialImage", "artificial", 40, 2),
    "letters": ("perceptionLetterImage", "letters", 10, 2),
}


@pytest.fixture
def micro(monkeypatch) -> str:
    """An even smaller preset than tiny, for tests that simulate several subjects."""
    reps = {"training": 2, "test": 2, "artificial": 1, "letters": 1}
    monkeypatch.setitem(PRESETS, "micro", SimPreset("micro", 32, 120, 12, 4, reps))
    return "micro"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sim") / "subject"
    return out, simulate_subject(out, preset="tiny", seed=0, progress=False)


def test_layout_and_names(tiny) -> None:
    out, summary = tiny
    for key, (part, folder, n_images, reps) in PARTS.items():
        path = out / "fmri" / f"sub-01_{part}_original_VC.h5"
        assert Path(summary["files"][key]) == path and path.is_file()
        bdata = BData(path)
        ids = bdata.get("stimulus_id")[:, 0]
        assert ids.dtype == np.float64 and len(ids) == n_images * reps
        np.testing.assert_array_equal(bdata.select("Label")[:, 1], ids)
        names = {p.stem for p in (out / "images" / folder).glob("*.JPEG")}
        assert names == {id_to_name(i) for i in np.unique(ids)}
        assert len(names) == n_images
        assert summary["sets"][key]["samples"] == n_images * reps
    for name in ("encoding.npz", "noiseless_training.npz", "model.json", "summary.json"):
        assert (out / "truth" / name).is_file()
    model = json.loads((out / "truth" / "model.json").read_text())
    assert "random" in model["features"]["mid_level"]["network"]
    assert not list(out.parent.glob(".subject.partial-*"))


def test_bdata_columns_and_rois(tiny) -> None:
    out, summary = tiny
    bdata = BData(out / "fmri" / "sub-01_perceptionNaturalImageTest_original_VC.h5")
    voxels = bdata.select("VoxelData")
    assert voxels.shape == (40, 400) and np.isfinite(voxels).all()
    for key in ("ROI_V1", "ROI_V2", "ROI_V3", "ROI_hV4", "ROI_HVC", "ROI_LVC", "ROI_VC"):
        assert key in bdata.metadata_keys
        assert bdata.select(key).shape[1] == summary["roi_voxels"][key]
    v1 = set(bdata.select("ROI_V1", return_index=True)[1].nonzero()[0])
    lvc = set(bdata.select("ROI_LVC", return_index=True)[1].nonzero()[0])
    vc = set(bdata.select("ROI_VC", return_index=True)[1].nonzero()[0])
    assert v1 < lvc < vc
    for axis in "xyz":
        coords = bdata.metadata(f"voxel_{axis}")[bdata.metadata("VoxelData") == 1]
        assert np.isfinite(coords).all()
    run, session = bdata.get("Run")[:, 0], bdata.get("Session")[:, 0]
    assert run.min() == 1 and session.min() == 1 and (np.diff(run) >= 0).all()


def test_bdpy_reads_the_files(tiny) -> None:
    bdpy = pytest.importorskip("bdpy")
    out, _ = tiny
    path = out / "fmri" / "sub-01_perceptionNaturalImageTraining_original_VC.h5"
    theirs, ours = bdpy.BData(str(path)), BData(path)
    for expr in ("VoxelData", "ROI_V1", "ROI_LVC", "ROI_VC = 1", "Label", "Run"):
        np.testing.assert_array_equal(theirs.select(expr), ours.select(expr))
    np.testing.assert_array_equal(theirs.get("stimulus_id"), ours.get("stimulus_id"))


def test_same_seed_same_data(micro, tmp_path) -> None:
    first, again = tmp_path / "first", tmp_path / "again"
    for out in (first, again):
        simulate_subject(out, preset=micro, seed=0, progress=False)
    for part, folder, _, _ in PARTS.values():
        name = f"fmri/sub-01_{part}_original_VC.h5"
        np.testing.assert_array_equal(BData(first / name).dataset, BData(again / name).dataset)
        for image in (first / "images" / folder).glob("*.JPEG"):
            assert image.read_bytes() == (again / "images" / folder / image.name).read_bytes()


def test_calibration_figures_at_tiny_preset(tiny) -> None:
    _, summary = tiny
    cal = summary["calibration"]
    # 60 training and 10 test images: the figure is noisy (0.45-0.75 over seeds, and
    # not much better at high SNR); the demo preset is the calibrated one (65-85%).
    assert 0.35 <= summary["ridge_pairwise_identification"] <= 0.98
    assert cal["ridge"]["pixels_px"] == 32
    assert set(cal["noise_ceiling_median_pct"]) == set(summary["roi_voxels"])
    assert all(0 <= v <= 100 for v in cal["noise_ceiling_median_pct"].values())
    quantiles = list(cal["reliability_quantiles"].values())
    assert quantiles == sorted(quantiles)


def test_noise_ceiling_follows_snr(micro, tmp_path) -> None:
    ceilings = {}
    for snr in (0.3, 3.0):
        summary = simulate_subject(tmp_path / f"s{snr}", preset=micro, snr=snr, progress=False)
        ceilings[snr] = summary["calibration"]["noise_ceiling_median_pct"]["ROI_LVC"]
        assert summary["snr"] == snr and not summary["snr_is_default"]
    assert ceilings[3.0] > 80.0 and ceilings[3.0] > ceilings[0.3] + 30.0


def test_refuses_non_empty_folder_and_bad_arguments(tiny, tmp_path) -> None:
    out, _ = tiny
    with pytest.raises(DataError, match="not empty"):
        simulate_subject(out, preset="tiny", progress=False)
    with pytest.raises(ConfigError, match="preset"):
        simulate_subject(tmp_path / "x", preset="huge", progress=False)
    with pytest.raises(ConfigError, match="snr"):
        simulate_subject(tmp_path / "x", preset="tiny", snr=-1.0, progress=False)


def test_overwrite_replaces_only_a_simulated_subject(micro, tmp_path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(DataError, match=r"not a simulated subject.*delete it by hand"):
        simulate_subject(mine, preset=micro, progress=False, overwrite=True)
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    sim = tmp_path / "sim"
    simulate_subject(sim, preset=micro, seed=1, progress=False)
    summary = simulate_subject(sim, preset=micro, seed=2, progress=False, overwrite=True)
    assert summary["seed"] == 2 and (sim / "truth" / "summary.json").is_file()


def test_failure_leaves_nothing_behind(micro, tmp_path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(subject_module, "calibration_figures", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        simulate_subject(tmp_path / "subject", preset=micro, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_project_loaders_read_the_subject(tiny, tmp_path) -> None:
    from e2e_recon.data.dataset import load_test_set, load_training_set

    out, _ = tiny
    fmri = out / "fmri"
    training = load_training_set(
        fmri / "sub-01_perceptionNaturalImageTraining_original_VC.h5",
        out / "images",
        image_size_px=32,
        cache_dir=tmp_path,
    )
    assert training.voxels.shape == (120, 400) and training.images.shape == (60, 32, 32, 3)
    expected = {"perceptionNaturalImageTest": 10, "perceptionArtificialImage": 40}
    for part, n_images in expected.items():
        test = load_test_set(
            fmri / f"sub-01_{part}_original_VC.h5",
            out / "images",
            "ROI_VC = 1",
            training.norm,
            image_size_px=32,
        )
        assert test.voxels.shape == (n_images, 400) and test.images is not None
