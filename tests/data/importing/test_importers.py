"""Importing .mat / .npz arrays as BData files and image folders that training accepts."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from subject_factory import stimulus_ids, write_images

from e2e_recon.data.bdata import BData
from e2e_recon.data.dataset import load_test_set, load_training_set
from e2e_recon.data.importing.importers import import_arrays, load_arrays
from e2e_recon.data.labels import id_to_name
from e2e_recon.errors import DataError

N_IMAGES, REPS, N_VOX = 5, 3, 7
TRAIN_NAME = "sub-01_perceptionNaturalImageTraining_original_VC.h5"


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(N_IMAGES), REPS)
    return {
        "voxels": rng.normal(size=(labels.size, N_VOX)),
        "labels": labels,
        "images": rng.integers(0, 256, (N_IMAGES, 20, 20, 3), dtype=np.uint8),
        "split": (labels >= 3).astype(np.uint8),  # images 3 and 4 are test images
        "roi_V1": (np.arange(N_VOX) < 3).astype(float),
        "roi_VC": np.ones(N_VOX),
    }


def test_mat_import_gives_files_training_accepts(tmp_path: Path) -> None:
    src = arrays()
    scipy.io.savemat(tmp_path / "mine.mat", src)
    summary = import_arrays(tmp_path / "mine.mat", tmp_path / "out")
    assert summary["n_training_samples"] == 9 and summary["n_test_samples"] == 6
    assert summary["n_training_images"] == 3 and summary["n_test_images"] == 2
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "e2e-recon-import.json",
        "fmri",
        "images",
        "preview.png",
    ]
    assert summary["training_file"] == str(out / "fmri" / TRAIN_NAME)
    ts = load_training_set(summary["training_file"], summary["training_images_dir"], "ROI_V1", 20)
    assert ts.voxels.shape == (9, 3) and ts.images.shape == (3, 20, 20, 3)
    sample0 = ts.image_index[0]  # label 0 -> first image of the array, stored as BGR
    np.testing.assert_array_equal(ts.images[sample0], src["images"][0][..., ::-1])
    test = load_test_set(summary["test_file"], summary["test_images_dir"], "ROI_V1", ts.norm, 20)
    np.testing.assert_array_equal(test.n_trials, [3, 3])
    raw = src["voxels"][src["labels"] == 3].mean(0)[:3]
    np.testing.assert_allclose(test.voxels[0], (raw - ts.norm.mean) / ts.norm.std, atol=1e-5)
    np.testing.assert_array_equal(test.images[0], src["images"][3][..., ::-1])
    assert "0.000004,n00000000_4,3" in (out / "images" / "names.csv").read_text()
    assert BData(summary["training_file"]).vmap["stimulus_id"][0.000001] == "n00000000_1"


def test_npz_separate_sets_with_image_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    write_images(tmp_path / "pics", stimulus_ids(4))
    names = np.array([id_to_name(i) for i in stimulus_ids(4)])
    np.savez(
        tmp_path / "mine.npz",
        train_voxels=rng.normal(size=(6, 4)),
        train_labels=np.tile(names[:2], 3),
        test_voxels=rng.normal(size=(4, 4)),
        test_labels=np.repeat(names[2:], 2),
    )
    summary = import_arrays(tmp_path / "mine.npz", tmp_path / "out", images_dir=tmp_path / "pics")
    bd = BData(summary["test_file"])
    np.testing.assert_array_equal(np.unique(bd.get("stimulus_id")), stimulus_ids(4)[2:])
    ts = load_training_set(summary["training_file"], summary["training_images_dir"])
    assert ts.stimulus_names == list(names[:2])


def test_matlab_v73_transposed(tmp_path: Path) -> None:
    """v7.3 files are HDF5 with every array transposed; 1-based labels, (H, W, 3, n) images."""
    src = arrays()
    with h5py.File(tmp_path / "v73.mat", "w") as h5:
        h5.create_dataset("X", data=src["voxels"].T)
        h5.create_dataset("y", data=(src["labels"] + 1.0)[None, :].T.T)
        h5.create_dataset("stimuli", data=np.moveaxis(src["images"], 0, -1).T)
        ds = h5.create_dataset("note", data=np.array([[ord(c) for c in "x"]], np.uint16))
        ds.attrs["MATLAB_class"] = b"char"
    loaded = load_arrays(tmp_path / "v73.mat")
    assert loaded["X"].shape == (15, N_VOX) and loaded["note"][0] == "x"
    summary = import_arrays(
        tmp_path / "v73.mat", tmp_path / "out", subject="sub-07", split_key=None, label_base=1
    )
    assert summary["test_file"] is None and summary["n_training_images"] == N_IMAGES
    ts = load_training_set(summary["training_file"], summary["training_images_dir"], "ROI_VC", 20)
    np.testing.assert_array_equal(ts.images[ts.image_index[1]], src["images"][1][..., ::-1])
    assert Path(summary["training_file"]).name.startswith("sub-07_")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": np.arange(14)}, r"voxels has 15 samples .* labels has 14 entries"),
        ({"split": np.zeros(3)}, "split array has 3 entries for 15 samples"),
        ({"labels": np.tile(np.arange(N_IMAGES), REPS) + 10}, "does not index the images"),
        ({"roi_V1": np.ones(3)}, "ROI array 'roi_V1' has 3 entries"),
        ({"split": np.ones(15)}, "nothing to train on"),
    ],
)
def test_bad_imports_leave_nothing(tmp_path: Path, change: dict, message: str) -> None:
    src = arrays()
    src.update(change)
    scipy.io.savemat(tmp_path / "bad.mat", src)
    with pytest.raises(DataError, match=message):
        import_arrays(tmp_path / "bad.mat", tmp_path / "out")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_missing_arrays_and_files(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", foo=np.zeros((3, 2)))
    with pytest.raises(DataError, match=r"No voxels array found .* foo \(3, 2\)"):
        import_arrays(tmp_path / "a.npz", tmp_path / "out")
    with pytest.raises(DataError, match="No array 'brain'"):
        import_arrays(tmp_path / "a.npz", tmp_path / "out", voxels_key="brain")
    (tmp_path / "b.mat").write_bytes(b"MATLAB 5.0 garbage")
    with pytest.raises(DataError, match="Cannot read"):
        load_arrays(tmp_path / "b.mat")
    with pytest.raises(DataError, match="unsupported file type"):
        load_arrays(_touch(tmp_path))


def _touch(tmp_path: Path) -> Path:
    (tmp_path / "c.csv").write_text("1,2")
    return tmp_path / "c.csv"


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "mine.mat", arrays())
    import_arrays(tmp_path / "mine.mat", tmp_path / "out")
    with pytest.raises(DataError, match="already exists"):
        import_arrays(tmp_path / "mine.mat", tmp_path / "out")
    scipy.io.savemat(tmp_path / "mine.mat", arrays(seed=5))
    summary = import_arrays(tmp_path / "mine.mat", tmp_path / "out", overwrite=True)
    np.testing.assert_allclose(
        BData(summary["training_file"]).get("VoxelData")[0], arrays(seed=5)["voxels"][0]
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "e2e-recon-import.json",
        "fmri",
        "images",
        "preview.png",
    ]


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("overwrite", [False, True])
def test_overwrite_never_replaces_folders_an_import_did_not_write(
    tmp_path: Path, overwrite: bool
) -> None:
    """A user's own fmri/ or images/ (their data, or an import older than the marker)."""
    scipy.io.savemat(tmp_path / "mine.mat", arrays())
    out = tmp_path / "data"
    (out / "fmri").mkdir(parents=True)
    (out / "fmri" / "sub-01_mine_original_VC.h5").write_bytes(b"my recording")
    (out / "images").mkdir()
    (out / "images" / "holiday.jpg").write_bytes(b"my picture")
    before = _listing(out)
    with pytest.raises(DataError, match=r"not marked as an import's output.*delete it by hand"):
        import_arrays(tmp_path / "mine.mat", out, overwrite=overwrite)
    assert _listing(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["fmri", "images"]


@pytest.mark.parametrize("subject", ["../../../X", "ABSOLUTE", "<b>x</b>", "a b", ".", ""])
def test_subject_is_checked_as_set_name_is(tmp_path: Path, subject: str) -> None:
    """--subject names the BData files: it must not lead outside --out or carry markup."""
    scipy.io.savemat(tmp_path / "mine.mat", arrays())
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    subject = str(tmp_path / "abs") if subject == "ABSOLUTE" else subject
    with pytest.raises(DataError, match="--subject"):
        import_arrays(tmp_path / "mine.mat", work / "out", subject=subject)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [tmp_path / "mine.mat"]


def test_cli_import_refuses_a_subject_with_a_path(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from e2e_recon.cli import app

    scipy.io.savemat(tmp_path / "mine.mat", arrays())
    out = tmp_path / "x" / "y" / "out"
    result = CliRunner().invoke(
        app, ["import", str(tmp_path / "mine.mat"), "--out", str(out), "--subject", "../../../X"]
    )
    assert result.exit_code == 2, result.output
    assert "--subject" in result.output and len(result.output.strip().splitlines()) == 1
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [tmp_path / "mine.mat"]


@pytest.mark.bdpy
def test_imported_file_loads_in_bdpy(tmp_path: Path) -> None:
    bdpy = pytest.importorskip("bdpy")
    scipy.io.savemat(tmp_path / "mine.mat", arrays())
    summary = import_arrays(tmp_path / "mine.mat", tmp_path / "out")
    theirs = bdpy.BData(summary["training_file"])
    np.testing.assert_array_equal(
        theirs.select("ROI_V1 = 1"), BData(summary["training_file"]).select("ROI_V1")
    )
    assert (
        theirs.select("Label = 1")[:, 1].tolist()
        == BData(summary["training_file"]).get("stimulus_id")[:, 0].tolist()
    )
