"""Image loading, cropping, Caffe-space conversion and the uint8 cache."""

from __future__ import annotations

import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from subject_factory import stimulus_ids, write_images

from e2e_recon.data import image_files
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
        image_files.find_image_files(tmp_path, ["n01518878_1", "n02084071_2", "n03000001_3"])


def test_cache_written_once_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = write_images(tmp_path / "img", stimulus_ids(4))
    first = image_files.cached_bgr_images(paths, 12, tmp_path / "cache")
    assert isinstance(first, np.memmap) and first.shape == (4, 12, 12, 3)
    np.testing.assert_array_equal(first[0], im.load_image(paths[0], 12)[..., ::-1])

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(image_files, "load_image", no_decoding)
    again = image_files.cached_bgr_images(paths, 12, tmp_path / "cache")
    np.testing.assert_array_equal(again, first)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    with pytest.raises(AssertionError):  # new settings -> new key -> decodes
        image_files.cached_bgr_images(paths, 14, tmp_path / "cache")


def test_interrupted_cache_leaves_nothing(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "img", stimulus_ids(3))
    paths[1].write_bytes(b"garbage")
    with pytest.raises(DataError, match=paths[1].name):
        image_files.cached_bgr_images(paths, 12, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def _png16(path: Path, pixels: np.ndarray, colour_type: int) -> Path:
    """Write a 16-bit PNG by hand (Pillow writes 16 bits for greyscale only)."""
    height, width = pixels.shape[:2]
    raw = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    blob = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + blob)
    return path


def test_16_bit_greyscale_png_is_scaled_not_white(tmp_path: Path) -> None:
    grey = np.array([[0, 257 * 64], [257 * 128, 65535]], dtype=np.uint16)
    rgb = im.load_image(_png16(tmp_path / "g.png", grey, 0), None)
    np.testing.assert_array_equal(rgb[..., 0], [[0, 64], [128, 255]])
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_16_bit_colour_pngs_are_scaled(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), dtype=np.uint16)
    rgba[..., 0], rgba[..., 1], rgba[..., 3] = 65535, 257 * 100, 65535
    np.testing.assert_array_equal(
        im.load_image(_png16(tmp_path / "c.png", rgba[..., :3], 2), None)[0, 0], [255, 100, 0]
    )
    np.testing.assert_array_equal(
        im.load_image(_png16(tmp_path / "ca.png", rgba, 6), None)[0, 0], [255, 100, 0]
    )
    la = np.stack([np.full((2, 2), 257 * 50), np.full((2, 2), 65535)], axis=-1)
    np.testing.assert_array_equal(
        im.load_image(_png16(tmp_path / "la.png", la, 4), None)[0, 0], [50, 50, 50]
    )


@pytest.mark.parametrize(
    ("mode", "colour", "expected"),
    [
        ("LA", (90, 7), (90, 90, 90)),
        ("CMYK", (0, 255, 0, 0), (255, 0, 255)),
        ("RGBA", (10, 20, 30, 0), (10, 20, 30)),
        ("1", 1, (255, 255, 255)),
    ],
)
def test_other_modes_convert(tmp_path: Path, mode: str, colour: object, expected: tuple) -> None:
    path = tmp_path / ("x.tiff" if mode == "CMYK" else "x.png")
    Image.new(mode, (3, 3), colour).save(path)  # type: ignore[arg-type]
    np.testing.assert_array_equal(im.load_image(path, None)[1, 1], expected)


def test_palette_png_converts(tmp_path: Path) -> None:
    img = Image.new("P", (2, 2), 1)
    img.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    img.save(tmp_path / "p.png")
    np.testing.assert_array_equal(im.load_image(tmp_path / "p.png", None)[0, 0], [200, 100, 50])


def test_float_pixels_are_refused(tmp_path: Path) -> None:
    Image.new("F", (2, 2), 0.5).save(tmp_path / "f.tiff")
    with pytest.raises(DataError, match=r"f\.tiff.*mode 'F'"):
        im.load_image(tmp_path / "f.tiff", None)


def test_one_stimulus_under_two_extensions_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "img"
    write_images(folder, stimulus_ids(2))
    name = next(p.stem for p in sorted(folder.iterdir()) if p.suffix == ".JPEG")
    Image.new("RGB", (4, 4)).save(folder / f"{name}.png")
    with pytest.raises(DataError, match=rf"{name}\.JPEG and .*{name}\.png"):
        image_files.find_image_files(folder, [name])
    deeper = tmp_path / "img2"
    write_images(deeper, stimulus_ids(1))
    only = next(deeper.iterdir())
    (deeper / "sub").mkdir()
    Image.new("RGB", (4, 4)).save(deeper / "sub" / f"{only.stem}.png")
    assert image_files.find_image_files(deeper, [only.stem]) == [only]  # the shallower file wins


def test_cache_file_mode_follows_the_umask(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "img", stimulus_ids(2))
    old = os.umask(0o022)
    try:
        image_files.cached_bgr_images(paths, 8, tmp_path / "cache")
    finally:
        os.umask(old)
    (cache,) = (tmp_path / "cache").iterdir()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o644
