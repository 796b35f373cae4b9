"""Paired training data, normalisation statistics, test averaging and the crop sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from subject_factory import make_subject, stimulus_ids, write_fmri

from e2e_recon.config import load_config, with_overrides
from e2e_recon.data import image_files
from e2e_recon.data import images as im
from e2e_recon.data.bdata import BData
from e2e_recon.data.dataset import (
    CropSampler,
    NormStats,
    load_test_set,
    load_training_set,
    stimulus_ids_of,
    training_responses,
)
from e2e_recon.data.home import ENV_HOME, image_cache_dir
from e2e_recon.data.labels import id_to_name
from e2e_recon.errors import DataError


@pytest.fixture
def subject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv(ENV_HOME, str(tmp_path / "home"))  # a fresh image cache per test
    return make_subject(tmp_path)


def test_training_pairs_and_zscore(subject: dict[str, Path]) -> None:
    ts = load_training_set(subject["train"], subject["train_images"], image_size_px=16)
    bd = BData(subject["train"])
    raw = bd.select("ROI_VC = 1")
    assert ts.voxels.shape == raw.shape == (18, 9) and ts.voxels.dtype == np.float32
    np.testing.assert_allclose(ts.voxels, (raw - raw.mean(0)) / raw.std(0), atol=1e-5)
    np.testing.assert_allclose(ts.norm.std, raw.std(0, ddof=0), rtol=1e-6)
    assert ts.images.shape == (6, 16, 16, 3) and ts.images.dtype == np.uint8
    assert isinstance(ts.images, np.memmap)
    ids = stimulus_ids_of(bd)
    np.testing.assert_array_equal(ts.stimulus_ids[ts.image_index], ids)  # each sample's image
    assert ts.stimulus_names == [id_to_name(i) for i in ts.stimulus_ids]
    paths = image_files.find_image_files(subject["train_images"], ts.stimulus_names)
    for k, path in enumerate(paths):
        np.testing.assert_array_equal(ts.images[k], im.load_image(path, 16)[..., ::-1])  # BGR
    assert ts.val is None
    assert list(image_cache_dir().glob("images-16px-*.npy"))


def test_training_responses_are_the_mean_z_scored_pattern_of_each_image(
    subject: dict[str, Path],
) -> None:
    """Read without images: the z-scored patterns (whole file) averaged per stimulus."""
    responses, ids = training_responses(subject["train"])
    bd = BData(subject["train"])
    raw = bd.select("ROI_VC = 1")  # (18, 9): 6 images x 3
    z = (raw - raw.mean(0)) / raw.std(0)
    per_sample = stimulus_ids_of(bd)
    np.testing.assert_array_equal(ids, np.unique(per_sample))
    expected = np.stack([z[per_sample == i].mean(0) for i in ids])
    assert responses.shape == (6, 9)
    np.testing.assert_allclose(responses, expected, atol=1e-5)


def test_image_cache_goes_to_the_data_home_not_the_image_folder(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    """The user's image folder stays untouched; ``cache_dir`` still overrides the home."""
    before = sorted(p.name for p in subject["train_images"].rglob("*"))
    load_training_set(subject["train"], subject["train_images"], image_size_px=16)
    assert sorted(p.name for p in subject["train_images"].rglob("*")) == before
    assert len(list((tmp_path / "home" / "cache" / "images").glob("*.npy"))) == 1
    load_training_set(
        subject["train"], subject["train_images"], image_size_px=16, cache_dir=tmp_path / "c"
    )
    assert len(list((tmp_path / "c").glob("*.npy"))) == 1


def test_label_column_used_without_named_key(tmp_path: Path) -> None:
    ids = np.tile(stimulus_ids(3), 2)
    write_fmri(tmp_path / "a.h5", ids, named_key=False)
    np.testing.assert_array_equal(stimulus_ids_of(BData(tmp_path / "a.h5")), ids)


def test_test_set_averages_all_presentations(subject: dict[str, Path]) -> None:
    ts = load_training_set(subject["train"], subject["train_images"], image_size_px=16)
    test = load_test_set(subject["test"], subject["test_images"], "ROI_VC = 1", ts.norm, 16)
    bd = BData(subject["test"])
    raw, ids = bd.select("ROI_VC = 1"), stimulus_ids_of(bd)
    assert test.set_name == "natural"
    np.testing.assert_array_equal(test.stimulus_ids, np.sort(np.unique(ids)))
    np.testing.assert_array_equal(test.n_trials, [4, 4, 4])
    for m, stim in enumerate(test.stimulus_ids):
        mean = raw[ids == stim].mean(0)
        np.testing.assert_allclose(test.voxels[m], (mean - ts.norm.mean) / ts.norm.std, atol=1e-5)
    assert test.images is not None and test.images.shape == (3, 16, 16, 3)
    no_images = load_test_set(subject["test"], None, "ROI_VC = 1", ts.norm)
    assert no_images.images is None and no_images.stimulus_names == test.stimulus_names


def test_uneven_trial_counts(tmp_path: Path, subject: dict[str, Path]) -> None:
    ts = load_training_set(subject["train"], subject["train_images"], image_size_px=16)
    ids = stimulus_ids(8)[6:]
    write_fmri(tmp_path / "t.h5", np.array([ids[0], ids[1], ids[0], ids[0]]), seed=3)
    test = load_test_set(tmp_path / "t.h5", None, "ROI_VC = 1", ts.norm)
    np.testing.assert_array_equal(test.n_trials, [3, 1])


def test_subsets_and_validation(subject: dict[str, Path]) -> None:
    ts = load_training_set(
        subject["train"], subject["train_images"], image_size_px=16, train_images=3, val_images=2
    )
    assert ts.images.shape[0] == 3 and ts.voxels.shape[0] == 9
    assert ts.val is not None and ts.val.set_name == "val"
    assert not set(ts.val.stimulus_ids) & set(ts.stimulus_ids)
    np.testing.assert_array_equal(ts.val.n_trials, [3, 3])
    assert ts.val.images is not None and ts.val.images.shape == (2, 16, 16, 3)
    # Statistics come from the training images only.
    bd = BData(subject["train"])
    rows = np.isin(stimulus_ids_of(bd), ts.stimulus_ids)
    np.testing.assert_allclose(ts.norm.mean, bd.select("ROI_VC")[rows].mean(0), rtol=1e-5)
    again = load_training_set(
        subject["train"], subject["train_images"], image_size_px=16, train_images=3, val_images=2
    )
    np.testing.assert_array_equal(again.stimulus_ids, ts.stimulus_ids)


def test_norm_stats_round_trip(subject: dict[str, Path], tmp_path: Path) -> None:
    ts = load_training_set(subject["train"], subject["train_images"], image_size_px=16)
    torch.save(ts.norm.to_dict(), tmp_path / "n.pt")
    back = NormStats.from_dict(torch.load(tmp_path / "n.pt", weights_only=True))
    np.testing.assert_array_equal(back.mean, ts.norm.mean)
    np.testing.assert_array_equal(back.voxel_xyz, ts.norm.voxel_xyz)
    assert back.roi == "ROI_VC = 1" and back.mean.dtype == np.float32


def test_crop_sampler(subject: dict[str, Path]) -> None:
    ts = load_training_set(subject["train"], subject["train_images"], image_size_px=16)
    sampler = CropSampler(ts, crop_px=11)
    g = torch.Generator().manual_seed(0)
    voxels, crops = sampler.sample(5, g)
    assert voxels.shape == (5, 9) and crops.shape == (5, 3, 11, 11)
    assert crops.dtype == torch.float32
    # Same as cropping the uint8 image by hand and converting through the numpy path.
    tops, lefts = torch.tensor([0, 5]), torch.tensor([5, 2])
    got = sampler.crops(torch.tensor([1, 4]), tops, lefts)
    for k, (img, t, left) in enumerate(((1, 0, 5), (4, 5, 2))):
        bgr = np.asarray(ts.images[img, t : t + 11, left : left + 11])
        expected = im.rgb_uint8_to_caffe(bgr[..., ::-1])
        np.testing.assert_allclose(got[k].numpy(), expected)
    g2 = torch.Generator().manual_seed(0)
    np.testing.assert_array_equal(sampler.sample(5, g2)[1].numpy(), crops.numpy())


# ------------------------------------------------------------------ bad input


def test_missing_roi_lists_rois(subject: dict[str, Path]) -> None:
    with pytest.raises(DataError, match="ROIs in this file: ROI_VC, ROI_V1"):
        load_training_set(subject["train"], subject["train_images"], roi="ROI_FFA = 1")


def test_roi_equals_zero_gotcha_refused(subject: dict[str, Path]) -> None:
    with pytest.raises(DataError, match="non-voxel columns"):
        load_training_set(subject["train"], subject["train_images"], roi="ROI_V1 = 0")


def test_missing_image_named(subject: dict[str, Path]) -> None:
    name = id_to_name(stimulus_ids(6)[4])
    (subject["train_images"] / f"{name}.JPEG").unlink()
    with pytest.raises(DataError, match=f"{name}.JPEG"):
        load_training_set(subject["train"], subject["train_images"], image_size_px=16)
    assert not list(image_cache_dir().glob("*"))


def test_nonfinite_voxels(tmp_path: Path, subject: dict[str, Path]) -> None:
    bd = BData(subject["train"])
    data = bd.dataset.copy()
    data[2, 4] = np.nan
    data[5, 4] = np.inf
    data[0, 7] = -np.inf
    bd.dataset = data
    bd.save(tmp_path / "bad.h5")
    with pytest.raises(DataError, match=r"3 non-finite .* 2 columns .*\[4, 7\]") as caught:
        load_training_set(tmp_path / "bad.h5", subject["train_images"], image_size_px=16)
    # The option the message recommends exists under that name.
    assert "data.drop_nonfinite_voxels" in str(caught.value)
    assert "--drop-nonfinite" not in str(caught.value)
    cfg = with_overrides(load_config("demo"), ["data.drop_nonfinite_voxels=true"])
    assert cfg.data.drop_nonfinite_voxels is True
    ts = load_training_set(
        tmp_path / "bad.h5", subject["train_images"], image_size_px=16, drop_nonfinite=True
    )
    assert ts.voxels.shape == (18, 7) and np.isfinite(ts.voxels).all()
    test = load_test_set(subject["test"], None, "ROI_VC = 1", ts.norm)
    assert test.voxels.shape == (3, 7)


def test_train_test_column_mismatch(tmp_path: Path, subject: dict[str, Path]) -> None:
    ts = load_training_set(subject["train"], subject["train_images"], image_size_px=16)
    write_fmri(tmp_path / "wide.h5", np.tile(stimulus_ids(2), 2), n_voxels=12)
    with pytest.raises(DataError, match=r"gives 11 voxel columns.*has 9"):
        load_test_set(tmp_path / "wide.h5", None, "ROI_VC = 1", ts.norm)
    bd = BData(subject["test"])
    bd.add_metadata("voxel_x", bd.metadata("voxel_x") + 1, "x")
    bd.save(tmp_path / "moved.h5")
    with pytest.raises(DataError, match="coordinates"):
        load_test_set(tmp_path / "moved.h5", None, "ROI_VC = 1", ts.norm)


def test_bad_fmri_file(tmp_path: Path, subject: dict[str, Path]) -> None:
    (tmp_path / "x.h5").write_bytes(subject["train"].read_bytes()[:1000])
    with pytest.raises(DataError, match="truncated"):
        load_training_set(tmp_path / "x.h5", subject["train_images"])


def test_too_many_held_out(subject: dict[str, Path]) -> None:
    with pytest.raises(DataError, match="leaves no training image"):
        load_training_set(subject["train"], subject["train_images"], val_images=6)
    with pytest.raises(DataError, match="only 4 images"):
        load_training_set(subject["train"], subject["train_images"], train_images=5, val_images=2)
