"""Image loading, cropping, Caffe-space conversion and the uint8 cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from subject_factory import stimulus_ids, write_images

from e2e_recon.data import images as im
from e2e_recon.errors import DataError


def test_load_image_greyscale_and_resize(tmp_path: Path) -> None:
    grey = np.arange(30 * 20, dtype=np.uint8).reshape(30, 20)
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    out = im.load_image(tmp_path / "g.png", 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    expected = np.asarray(Image.fromarray(grey, "L").resize((16, 16), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(out[..., 0], expected)
    rgba = Image.new("RGBA", (8, 8), (10, 20, 30, 40))
    rgba.save(tmp_path / "a.png")
    np.testing.assert_array_equal(im.load_image(tmp_path / "a.png", None)[0, 0], [10, 20, 30])


def test_load_image_errors(tmp_path: Path) -> None:
    bad = tmp_path / "n01518878_1.JPEG"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataError, match=r"n01518878_1\.JPEG"):
        im.load_image(bad, 8)
    with pytest.raises(DataError, match="not found"):
        im.load_image(tmp_path / "missing.png", 8)


def test_crops() -> None:
    x = np.arange(2 * 10 * 10 * 3, dtype=np.uint8).reshape(2, 10, 10, 3)
    c = im.center_crop_uint8(x, 7)
    assert c.shape == (2, 7, 7, 3)
    np.testing.assert_array_equal(c[:, 0, 0], x[:, 1, 1])  # offset (10 - 7) // 2 = 1
    r = im.random_crop_uint8(x[0], 4, np.random.default_rng(0))
    assert r.shape == (4, 4, 3)
    with pytest.raises(DataError, match="larger"):
        im.center_crop_uint8(x, 11)


def test_bgr_tensor_to_caffe_matches_numpy_path() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (2, 5, 5, 3), dtype=np.uint8)
    bgr = torch.from_numpy(im.rgb_to_bgr_uint8(rgb))
    np.testing.assert_allclose(
        im.bgr_uint8_tensor_to_caffe(bgr).numpy(), im.rgb_uint8_to_caffe(rgb), atol=0
    )


def test_find_image_files_reports_missing(tmp_path: Path) -> None:
    ids = stimulus_ids(3)
    write_images(tmp_path, ids[:2])
    with pytest.raises(DataError, match=r"n03000001_3 \(expected .*n03000001_3.JPEG\)"):
        im.find_image_files(tmp_path, ["n01518878_1", "n02084071_2", "n03000001_3"])


def test_cache_written_once_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = write_images(tmp_path / "img", stimulus_ids(4))
    first = im.cached_bgr_images(paths, 12, tmp_path / "cache")
    assert isinstance(first, np.memmap) and first.shape == (4, 12, 12, 3)
    np.testing.assert_array_equal(first[0], im.load_image(paths[0], 12)[..., ::-1])

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(im, "load_image", no_decoding)
    again = im.cached_bgr_images(paths, 12, tmp_path / "cache")
    np.testing.assert_array_equal(again, first)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    with pytest.raises(AssertionError):  # new settings -> new key -> decodes
        im.cached_bgr_images(paths, 14, tmp_path / "cache")


def test_interrupted_cache_leaves_nothing(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "img", stimulus_ids(3))
    paths[1].write_bytes(b"garbage")
    with pytest.raises(DataError, match=paths[1].name):
        im.cached_bgr_images(paths, 12, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []
