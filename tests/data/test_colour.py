"""Greyscale mode: luminance conversion, ``data.colour`` resolution, grey generator and ridge."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from subject_factory import make_subject

from e2e_recon.config import load_config
from e2e_recon.data.colour import is_grey, resolve_colour
from e2e_recon.data.dataset import TestSet
from e2e_recon.data.geometry import ImageGeometry, read_geometry, write_geometry
from e2e_recon.data.images import CAFFE_MEAN_BGR, grey_caffe_tensor, grey_float, grey_uint8
from e2e_recon.errors import ConfigError, DataError
from e2e_recon.evaluate.evaluate import evaluate_recon
from e2e_recon.nets.generator import Generator
from e2e_recon.recon.baselines import RidgeDecoder
from e2e_recon.recon.reconstruct import write_index, write_set
from e2e_recon.train.setup import check_supported, load_data, resolve_run_colour


def _colour_images(n: int = 6, size: int = 9, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_grey_uint8_is_pillows_luminance_in_three_channels() -> None:
    rgb = _colour_images()
    expected = np.stack([np.asarray(Image.fromarray(im).convert("L")) for im in rgb])
    grey = grey_uint8(rgb, order="rgb")
    assert grey.shape == rgb.shape and grey.dtype == np.uint8
    assert np.array_equal(grey[..., 0], expected) and is_grey(grey)
    assert np.array_equal(grey_uint8(rgb[..., ::-1]), grey)  # the BGR cache gives the same
    np.testing.assert_allclose(grey_float(rgb)[..., 1], expected, atol=0.51)


def test_grey_caffe_tensor_makes_equal_channels_and_passes_gradients() -> None:
    x = (torch.randn(2, 3, 5, 5) * 40).requires_grad_()
    grey = grey_caffe_tensor(x)
    levels = grey + torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)  # back to 0-255 values
    assert torch.allclose(levels[:, 0], levels[:, 1]) and torch.allclose(levels[:, 1], levels[:, 2])
    assert torch.allclose(grey_caffe_tensor(grey), grey, atol=1e-5)  # a projection
    grey[:, 0].sum().backward()  # type: ignore[no-untyped-call]
    assert x.grad is not None  # each channel's value moves the grey level by a third
    assert torch.allclose(x.grad, torch.full_like(x, 1 / 3))


def test_auto_is_grey_only_when_every_stimulus_is_grey() -> None:
    grey = grey_uint8(_colour_images())
    mode, note = resolve_colour("auto", grey, grey[:2])
    assert mode == "grey" and note is not None and "data.colour=rgb" in note
    mixed = grey.copy()
    mixed[3, 4, 4, 0] ^= 1  # one pixel of one image off grey
    assert resolve_colour("auto", grey, mixed) == ("rgb", None)
    assert resolve_colour("grey", _colour_images()) == ("grey", None)
    assert resolve_colour("rgb", grey) == ("rgb", None)
    with pytest.raises(ConfigError, match=r"data.colour='gray'.*auto.*rgb.*grey"):
        resolve_colour("gray", grey)


def test_grey_generator_outputs_exactly_grey_and_rebuilds_from_its_arch() -> None:
    grey = Generator(n_voxels=6, fc_width=32, output_size_px=16, base_channels=8, colour="grey")
    rgb = Generator(n_voxels=6, fc_width=32, output_size_px=16, base_channels=8)
    rgb.load_state_dict(grey.state_dict())  # same weights: only the projection differs
    x = torch.randn(3, 6)
    mean = torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    with torch.no_grad():
        out_grey, out_rgb = grey(x) + mean, rgb(x) + mean  # (3, 3, 16, 16), 0-255 values
    assert torch.allclose(out_grey[:, 0], out_grey[:, 2]) and torch.allclose(
        out_grey[:, 1], out_grey[:, 2]
    )
    assert not torch.allclose(out_rgb[:, 0], out_rgb[:, 2])
    assert torch.allclose(out_grey[:, 0], out_rgb.mean(dim=1), atol=1e-4)
    assert Generator(**grey.arch_kwargs()).colour == "grey"
    assert rgb.arch_kwargs()["colour"] == "rgb"
    with pytest.raises(ConfigError, match="colour"):
        Generator(n_voxels=6, colour="cmyk")


def test_geometry_records_the_colour_and_refuses_unknown_ones(tmp_path: Path) -> None:
    assert ImageGeometry.from_config(load_config("small")).colour == "rgb"  # auto, untrained
    cfg = load_config("small", ["data.colour=grey"])
    geometry = ImageGeometry.from_config(cfg)
    assert geometry.colour == "grey" and geometry.describe().endswith("grey")
    write_geometry(tmp_path, geometry)
    read = read_geometry(tmp_path)
    assert read is not None and read.colour == "grey"
    raw = json.loads((tmp_path / "geometry.json").read_text())
    (tmp_path / "geometry.json").write_text(json.dumps(raw | {"colour": "sepia"}))
    with pytest.raises(DataError, match=r"geometry.json.*sepia"):
        read_geometry(tmp_path)
    with pytest.raises(ConfigError, match=r"data\.colour"):
        check_supported(load_config("small", ["data.colour=sepia"]))


def test_forced_grey_turns_colour_stimuli_into_luminance_targets(tmp_path: Path) -> None:
    paths = make_subject(tmp_path, n_train=6, reps=2)
    overrides = [
        f"data.train_fmri='{paths['train']}'", f"data.images_dir='{tmp_path / 'images'}'",
        "data.image_size_px=40", "data.crop_px=32", "data.val_fraction=0", "data.val_images=2",
    ]  # fmt: skip
    colour = load_data(load_config("small", overrides))
    assert not is_grey(colour.images)
    cfg, note = resolve_run_colour(load_config("small", overrides), colour)
    assert cfg.data.colour == "rgb" and note is None
    grey = load_data(load_config("small", [*overrides, "data.colour=grey"]))
    assert is_grey(grey.images) and grey.val is not None and is_grey(grey.val.images)
    assert np.array_equal(grey.images, grey_uint8(np.asarray(colour.images)))


def test_ridge_decodes_one_grey_channel() -> None:
    rng = np.random.default_rng(0)
    images = grey_uint8(rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8))[..., :1]
    groups = np.repeat(np.arange(12), 2)
    voxels = images.reshape(12, -1)[groups] / 255.0 + rng.normal(0, 0.1, (24, 64))
    decoder = RidgeDecoder(decode_px=8, n_components=None).fit(voxels, images, groups)
    assert decoder.predict(voxels[:3]).shape == (3, 8, 8, 1)
    with pytest.raises(DataError, match=r"\(M, H, H, 1\) grey"):
        RidgeDecoder().fit(voxels, np.zeros((12, 8, 8, 2)), groups)


def test_grey_reconstructions_are_written_as_8_bit_greyscale(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    test_set = TestSet(
        np.zeros((2, 4), np.float32), np.array([3, 3]), np.array([1.000001, 1.000002]),
        ["n00000001_1", "n00000001_2"], None, "natural",
    )  # fmt: skip
    rows = write_set(tmp_path, "e2e", test_set, rng.normal(120, 40, (2, 10, 10, 1)))
    with Image.open(tmp_path / rows[0]["png"]) as png, Image.open(tmp_path / rows[0]["tif"]) as tif:
        assert png.mode == "L" and tif.mode == "L" and png.size == (10, 10)
    gen_img = scipy.io.loadmat(tmp_path / rows[0]["mat"])["gen_img"]
    assert gen_img.shape == (10, 10, 3) and is_grey(gen_img[None])


def _recon_folder(root: Path, colour: str) -> tuple[Path, Path]:
    """Colour stimuli, and grey reconstructions that are exactly their luminance."""
    yy, xx = np.mgrid[0:16, 0:16] / 16
    rng = np.random.default_rng(2)
    stimuli = (
        np.stack(
            [
                np.stack(
                    [
                        128 + 100 * np.sin(2 * np.pi * (f * xx + rng.random() + c * yy))
                        for c in range(3)
                    ],
                    axis=-1,
                )
                for f in rng.uniform(0.5, 2, 5)
            ]
        )
        .clip(0, 255)
        .astype(np.uint8)
    )  # (5, 16, 16, 3): colour gratings
    images = root / "images"
    images.mkdir(parents=True)
    names = [f"n00000001_{i + 1}" for i in range(5)]
    for name, stimulus in zip(names, stimuli, strict=True):
        Image.fromarray(stimulus).save(images / f"{name}.png")
    test_set = TestSet(
        np.zeros((5, 2), np.float32), np.full(5, 2), np.arange(1, 6) / 1e6 + 1, names, None,
        "natural",
    )  # fmt: skip
    recon = root / f"recon-{colour}"
    luminance = grey_float(stimuli.astype(np.float64))[..., :1]  # (5, 16, 16, 1)
    write_index(recon, write_set(recon, "e2e", test_set, luminance))
    write_geometry(recon, ImageGeometry(16, 16, colour, None, "test"))
    return recon, images


@pytest.mark.parametrize("colour", ["grey", "rgb"])
def test_evaluation_scores_grey_runs_against_the_luminance_of_the_stimuli(
    tmp_path: Path, colour: str
) -> None:
    recon, images = _recon_folder(tmp_path, colour)
    result = evaluate_recon(recon, images, None, feature_nets=(), n_boot=10, device="cpu")
    (row,) = [r for r in result["results"] if r["method"] == "e2e"]
    pixcorr = row["scores"]["pixcorr"]["mean"]
    # In grey the reconstructions are the stimuli's luminance (up to the display stretch);
    # scored in colour they miss the chromatic part.
    assert pixcorr > 0.99 if colour == "grey" else pixcorr < 0.95
