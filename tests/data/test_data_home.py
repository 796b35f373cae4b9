"""The data home, its resolvers and `check-data`, on files made in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from e2e_recon.data.bdata import BData
from e2e_recon.data.fetching.check import check_data
from e2e_recon.data.home import (
    ENV_HOME,
    data_home,
    normalize_subject,
    resolve_comparator_weights,
    resolve_subject_files,
)
from e2e_recon.data.labels import id_to_name
from e2e_recon.errors import DataError

TEST_IDS = np.array([1518878.005958, 1518878.010042, 2139199.010398], dtype=np.float64)


def _write_bdata(path: Path, ids: np.ndarray, repeats: int = 2, label_block: bool = False) -> None:
    rng = np.random.default_rng(0)
    samples = np.repeat(ids, repeats)  # (n_samples,)
    bdata = BData()
    bdata.add(rng.standard_normal((samples.size, 5)), "VoxelData")
    if label_block:  # the older layout: ids only in column 1 of a 'Label' block
        bdata.add(np.stack([np.arange(samples.size), samples], axis=1), "Label")
    else:
        bdata.add(samples, "stimulus_id")
    path.parent.mkdir(parents=True, exist_ok=True)
    bdata.save(path)


def test_data_home_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_HOME, str(tmp_path / "env"))
    assert data_home(tmp_path / "dest") == tmp_path / "dest"
    assert data_home() == tmp_path / "env"
    monkeypatch.delenv(ENV_HOME)
    assert data_home().name == "e2e-recon"


@pytest.mark.parametrize("text", ["sub-01", "1", "01", "sub-1", "SUB-01"])
def test_subject_names(text):
    assert normalize_subject(text) == "sub-01"


def test_bad_subject_name():
    with pytest.raises(DataError, match="not a subject name"):
        normalize_subject("subject one")


def test_resolve_subject_files(tmp_path):
    fmri = tmp_path / "fmri"
    fmri.mkdir()
    test_file = fmri / "sub-02_perceptionNaturalImageTest_original_VC.h5"
    test_file.write_bytes(b"")
    other = fmri / "sub-02_perceptionLetterImage_VC_v2.h5"  # another release name is accepted
    other.write_bytes(b"")
    files = resolve_subject_files("2", tmp_path)
    assert files["test"] == test_file and files["letters"] == other
    assert files["training"] is None and files["generator"] is None
    with pytest.raises(DataError) as caught:
        resolve_subject_files("sub-02", tmp_path, require=("test", "generator"))
    assert "e2e-recon download models --subject sub-02" in str(caught.value)
    with pytest.raises(DataError, match="e2e-recon download fmri --subject sub-02"):
        resolve_subject_files("sub-02", tmp_path, require=("training",))


def test_resolve_comparator_weights(tmp_path):
    with pytest.raises(DataError, match="e2e-recon download caffenet"):
        resolve_comparator_weights("caffenet", tmp_path)
    with pytest.raises(DataError, match="e2e-recon download alexnet"):
        resolve_comparator_weights("alexnet", tmp_path)
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "bvlc_reference_caffenet.caffemodel").write_bytes(b"")
    (weights / "alexnet-owt-12345678.pth").write_bytes(b"")
    assert resolve_comparator_weights("caffenet", tmp_path).name.startswith("bvlc_reference")
    assert resolve_comparator_weights("alexnet", tmp_path).name == "alexnet-owt-12345678.pth"
    with pytest.raises(DataError, match="expected 'caffenet' or 'alexnet'"):
        resolve_comparator_weights("vgg19", tmp_path)


def test_check_data_counts_present_and_missing_images(tmp_path):
    _write_bdata(tmp_path / "fmri" / "sub-01_perceptionNaturalImageTest_original_VC.h5", TEST_IDS)
    _write_bdata(
        tmp_path / "fmri" / "sub-01_perceptionLetterImage_original_VC.h5",
        np.array([5.000001, 5.000002]),
        label_block=True,
    )
    test_images = tmp_path / "images" / "test"
    test_images.mkdir(parents=True)
    (test_images / f"{id_to_name(TEST_IDS[0])}.JPEG").write_bytes(b"")
    (test_images / f"{id_to_name(TEST_IDS[2])}.png").write_bytes(b"")
    report = check_data("sub-01", tmp_path)
    test = report["sessions"]["test"]
    assert (test["n_stimuli"], test["n_present"], test["n_missing"]) == (3, 2, 1)
    assert test["first_missing"] == [id_to_name(TEST_IDS[1])]
    letters = report["sessions"]["letters"]
    assert letters["n_missing"] == 2  # no letters/ folder: looked up in images/ itself
    assert report["sessions"]["training"] is None
    assert not report["complete"]
    assert any("missing 1: n01518878_10042" in line for line in report["lines"])


def test_check_data_complete_with_explicit_images_dir(tmp_path):
    _write_bdata(tmp_path / "fmri" / "sub-01_perceptionNaturalImageTest_original_VC.h5", TEST_IDS)
    images = tmp_path / "elsewhere"
    (images / "test").mkdir(parents=True)
    for stim_id in TEST_IDS:
        (images / "test" / f"{id_to_name(stim_id)}.JPEG").write_bytes(b"")
    report = check_data("sub-01", tmp_path, images_dir=images)
    assert report["complete"]
    assert report["sessions"]["test"]["n_present"] == 3


def test_check_data_without_fmri_says_what_to_download(tmp_path):
    report = check_data("sub-03", tmp_path)
    assert not report["complete"]
    assert "e2e-recon download fmri --subject sub-03" in report["lines"][-1]


def test_check_data_cli_prints_the_report(tmp_path):
    import io

    from rich.console import Console

    from e2e_recon.data.fetching.download import check_data_cli

    _write_bdata(tmp_path / "fmri" / "sub-01_perceptionNaturalImageTest_original_VC.h5", TEST_IDS)
    out = io.StringIO()
    report = check_data_cli("sub-01", tmp_path, console=Console(file=out, width=300))
    assert "test: 0/3 images present" in out.getvalue()
    assert not report["complete"]
