"""Published dataset layouts: separate train/test arrays, flat MATLAB images, class labels."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from e2e_recon.data.bdata import BData
from e2e_recon.data.dataset import NormStats, load_test_set, load_training_set
from e2e_recon.data.importing.importers import import_arrays
from e2e_recon.data.importing.layouts import flat_to_images, parse_images_shape, train_test_pairs
from e2e_recon.errors import DataError

SIDE, N_TRAIN, N_TEST, N_VOX = 10, 12, 4, 30


def digits(seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A digit-style dataset as published: flat column-major images, class labels 1/2.

    Every image is different and asymmetric (a bright top row), so an image read in
    the wrong order is caught.
    """
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_TEST
    images = rng.integers(0, 100, (n, SIDE, SIDE)).astype(np.float64)
    images[:, 0, :] = 255  # upright: the top row is white
    flat = np.stack([im.ravel(order="F") for im in images])  # MATLAB's img(:)
    arrays = {
        "fmriTrn": rng.normal(size=(N_TRAIN, N_VOX)),
        "fmriTest": rng.normal(size=(N_TEST, N_VOX)),
        "stimTrn": flat[:N_TRAIN] / 255.0,
        "stimTest": flat[N_TRAIN:] / 255.0,
        "labelTrn": (np.arange(N_TRAIN) % 2 + 1.0)[:, None],
        "labelTest": (np.arange(N_TEST) % 2 + 1.0)[:, None],
    }
    return arrays, images.astype(np.uint8)


def check_digits(summary: dict, images: np.ndarray) -> None:
    assert summary["n_training_samples"] == summary["n_training_images"] == N_TRAIN
    assert summary["n_test_samples"] == summary["n_test_images"] == N_TEST
    ts = load_training_set(summary["training_file"], summary["training_images_dir"], "ROI_VC", SIDE)
    # One image per sample, in sample order, upright (BGR grey = the original).
    for i in range(N_TRAIN):
        np.testing.assert_array_equal(ts.images[ts.image_index[i], ..., 0], images[i])
    test = load_test_set(summary["test_file"], summary["test_images_dir"], "ROI_VC", ts.norm, SIDE)
    np.testing.assert_array_equal(test.n_trials, np.ones(N_TEST))
    np.testing.assert_array_equal(test.images[0, ..., 0], images[N_TRAIN])


def test_digit_mat_v5_imports_in_one_command(tmp_path: Path) -> None:
    arrays, images = digits()
    scipy.io.savemat(tmp_path / "digits.mat", arrays)
    summary = import_arrays(tmp_path / "digits.mat", tmp_path / "out", images_order="F")
    check_digits(summary, images)
    assert summary["voxels_from"] == "fmriTrn,fmriTest"
    assert summary["images_from"] == "stimTrn,stimTest"
    assert summary["labels_from"].startswith("none")
    assert "class labels" in summary["note_1"]
    assert summary["command"] == (
        f"e2e-recon import {tmp_path / 'digits.mat'} --out {tmp_path / 'out'} "
        "--voxels-key fmriTrn,fmriTest --labels-key none --images-key stimTrn,stimTest "
        "--images-order F"
    )
    # The printed command, with explicit keys, gives the same files.
    again = import_arrays(
        tmp_path / "digits.mat", tmp_path / "again", voxels_key="fmriTrn,fmriTest",
        labels_key="none", images_key="stimTrn,stimTest", images_order="F",
    )  # fmt: skip
    check_digits(again, images)


def test_digit_mat_v73_written_as_matlab_does(tmp_path: Path) -> None:
    """MATLAB v7.3: HDF5 with every array stored transposed; a 512-byte user block."""
    arrays, images = digits(1)
    with h5py.File(tmp_path / "digits.mat", "w", userblock_size=512) as h5:
        for key, value in arrays.items():
            ds = h5.create_dataset(key, data=np.asarray(value).T)
            ds.attrs["MATLAB_class"] = np.bytes_("double")
    summary = import_arrays(tmp_path / "digits.mat", tmp_path / "out", images_order="F")
    check_digits(summary, images)


def test_row_major_order_gives_transposed_images(tmp_path: Path) -> None:
    arrays, images = digits()
    np.savez(tmp_path / "digits.npz", **arrays)
    summary = import_arrays(tmp_path / "digits.npz", tmp_path / "out")
    ts = load_training_set(summary["training_file"], summary["training_images_dir"], "ROI_VC", SIDE)
    np.testing.assert_array_equal(ts.images[ts.image_index[0], ..., 0], images[0].T)


def test_import_writes_a_preview_and_says_how_flat_images_were_read(tmp_path: Path) -> None:
    """Without --images-order F the digits come out transposed and nothing in the file can
    tell: the import writes preview.png (training and test rows, with names) and the
    summary says how the flat rows were read, that --images-order F transposes them, and
    that both orders give plausible images."""
    from typer.testing import CliRunner

    from e2e_recon.cli import app
    from e2e_recon.data.importing.import_preview import PREVIEW_COUNT

    arrays, images = digits()
    scipy.io.savemat(tmp_path / "digits.mat", arrays)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["import", str(tmp_path / "digits.mat"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    assert f"preview: {out / 'preview.png'}" in printed and "check that they are upright" in printed
    assert "reshaped to 10 x 10, read row-major (C)" in printed
    assert "--images-order F reads them column-major (F, MATLAB), which transposes" in printed
    assert "Both orders give plausible images" in printed
    with Image.open(out / "preview.png") as sheet:
        preview = np.asarray(sheet.convert("L"))
    # Row 1: the first training images, 96 px each, nearest-neighbour, so each source
    # pixel is a 9.6 px block; the transposed digit has its white row as the left column.
    first = preview[4 + 18 : 4 + 18 + 96, 4 : 4 + 96]
    np.testing.assert_array_equal(first[:, 0], np.full(96, 255))
    assert first[50, 50] == images[0].T[5, 5]
    test_row_top = 4 + 2 * 18 + 96 + 4 + 14
    test_first = preview[test_row_top : test_row_top + 96, 4 : 4 + 96]
    assert test_first[50, 50] == images[N_TRAIN].T[5, 5]  # the test row shows test images
    assert preview.shape[1] == PREVIEW_COUNT * 100 + 4  # 8 named thumbnails per row

    upright = import_arrays(tmp_path / "digits.mat", tmp_path / "f", images_order="F")
    assert "read column-major (F, MATLAB)" in upright["images_reshaped"]
    assert "--images-order C" in upright["images_reshaped"]


def test_flat_images_not_square_name_the_smoother_order() -> None:
    """10 x 20 images: the wrong order scrambles rows, so the note says which order to use."""
    from e2e_recon.data.importing.import_preview import flat_images_note

    yy, xx = np.mgrid[0:10, 0:20]
    smooth = np.stack([(yy * 10 + xx * 3 + k) % 256 for k in range(6)]).astype(np.float64)
    flat_f = np.stack([im.ravel(order="F") for im in smooth])
    wrong = flat_images_note([flat_f], (10, 20), "C")
    assert "look scrambled" in wrong and "import again with --images-order F" in wrong
    right = flat_images_note([flat_f], (10, 20), "F")
    assert "look scrambled" not in right and "reshaped to 10 x 20" in right


def test_explicit_class_labels_refused(tmp_path: Path) -> None:
    arrays, _ = digits()
    scipy.io.savemat(tmp_path / "digits.mat", arrays)
    with pytest.raises(DataError, match=r"labelTrn.*2 distinct values.*--labels-key none"):
        import_arrays(tmp_path / "digits.mat", tmp_path / "out", labels_key="labelTrn,labelTest")
    assert not (tmp_path / "out" / "fmri").exists()


def test_pooled_class_labels_indexing_many_images_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "a.npz",
        voxels=rng.normal(size=(30, 5)),
        labels=np.arange(30) % 2,
        images=rng.integers(0, 255, (20, 8, 8), dtype=np.uint8),
    )
    with pytest.raises(DataError, match=r"only 2 distinct values for 20 .*one image per sample"):
        import_arrays(tmp_path / "a.npz", tmp_path / "out")


def test_pooled_flat_images_one_per_sample_without_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 4, 5, 3), dtype=np.uint8)
    np.savez(
        tmp_path / "a.npz",
        voxels=rng.normal(size=(6, 5)),
        images=images.reshape(6, -1),
        split=np.array([0, 0, 0, 0, 1, 1]),
    )
    summary = import_arrays(tmp_path / "a.npz", tmp_path / "out", images_shape="4x5")
    assert summary["n_training_images"] == 4 and summary["n_test_images"] == 2
    assert "--images-shape 4x5" in summary["command"] and "--labels-key none" in summary["command"]
    ts = load_training_set(summary["training_file"], summary["training_images_dir"], "ROI_VC", 4)
    assert ts.images.shape == (4, 4, 4, 3)  # resized to the 4 px square for training


@pytest.mark.parametrize(
    ("train", "test"),
    [("X_train", "X_test"), ("voxels_train", "voxels_test"), ("train/X", "test/X")],
)
def test_train_test_names_and_hdf5_groups(tmp_path: Path, train: str, test: str) -> None:
    rng = np.random.default_rng(0)
    img_train, img_test = train.replace("X", "Y").replace("voxels", "Y"), ""
    img_test = test.replace("X", "Y").replace("voxels", "Y")
    with h5py.File(tmp_path / "d.h5", "w") as h5:
        h5.create_dataset(train, data=rng.normal(size=(6, 4)))
        h5.create_dataset(test, data=rng.normal(size=(2, 4)))
        h5.create_dataset(img_train, data=rng.integers(0, 255, (6, 64), dtype=np.uint8))
        h5.create_dataset(img_test, data=rng.integers(0, 255, (2, 64), dtype=np.uint8))
    summary = import_arrays(tmp_path / "d.h5", tmp_path / "out")
    assert summary["voxels_from"] == f"{train},{test}"
    assert summary["images_from"] == f"{img_train},{img_test}"
    assert summary["n_training_images"] == 6 and summary["n_test_images"] == 2


def test_pairs_and_shapes() -> None:
    pairs = train_test_pairs(["fmriTrn", "fmriTest", "X_train", "X_test", "train_voxels",
                              "test_voxels", "constrain", "note"])  # fmt: skip
    assert pairs == {
        "fmri": ("fmriTrn", "fmriTest"),
        "x": ("X_train", "X_test"),
        "voxels": ("train_voxels", "test_voxels"),
    }
    assert parse_images_shape("28x28") == (28, 28)
    with pytest.raises(DataError, match="height x width"):
        parse_images_shape("28")
    with pytest.raises(DataError, match="--images-shape"):
        flat_to_images(np.zeros((2, 50)))
    rgb = np.arange(2 * 2 * 3 * 3).reshape(2, 2, 3, 3)
    flat = np.stack([im.ravel(order="F") for im in rgb])
    np.testing.assert_array_equal(flat_to_images(flat, (2, 3), "F"), rgb)


def test_set_name_names_the_test_set(tmp_path: Path) -> None:
    arrays, _ = digits()
    scipy.io.savemat(tmp_path / "digits.mat", arrays)
    summary = import_arrays(
        tmp_path / "digits.mat", tmp_path / "out", images_order="F", set_name="digits"
    )
    assert Path(summary["test_file"]).name == "sub-01_digits_original_VC.h5"
    assert Path(summary["test_images_dir"]).name == "digits"
    assert BData(summary["test_file"]).header["set_name"] == "digits"
    norm = NormStats(np.zeros(N_VOX, np.float32), np.ones(N_VOX, np.float32), "ROI_VC")
    assert load_test_set(summary["test_file"], None, "ROI_VC", norm).set_name == "digits"
    with pytest.raises(DataError, match="set-name"):
        import_arrays(tmp_path / "digits.mat", tmp_path / "o2", images_order="F", set_name="a b")
