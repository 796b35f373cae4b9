"""Conversion of Caffe files to the project's .pt, and errors for unfit weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from e2e_recon.caffe.convert import convert_caffemodel, module_to_blobs
from e2e_recon.caffe.wire import read_caffemodel_blobs, write_caffemodel
from e2e_recon.errors import ConfigError, ModelFormatError
from e2e_recon.nets import load_comparator, load_discriminator, load_generator
from e2e_recon.nets.generator import Generator


def tiny_generator() -> Generator:
    torch.manual_seed(0)
    return Generator(n_voxels=12, fc_width=32, output_size_px=64, base_channels=8)


def test_tiny_generator_round_trips_through_caffemodel_and_pt(tmp_path):
    generator = tiny_generator()
    with torch.no_grad():
        for name in ("deconv3", "conv3_1", "deconv0"):
            getattr(generator, name).bias.normal_()  # frozen in training, still loaded
    caffemodel = write_caffemodel(tmp_path / "g.caffemodel", module_to_blobs(generator))
    pt = convert_caffemodel(caffemodel, tmp_path / "g.pt")
    x = torch.randn(3, 12)
    with torch.no_grad():
        expected = generator(x)
        for loaded in (load_generator(caffemodel), load_generator(pt)):
            assert loaded.arch_kwargs() == generator.arch_kwargs()
            torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)
    payload = torch.load(pt, weights_only=True)
    assert payload["format"] == "e2e-recon/generator" and payload["version"] == 1
    assert payload["meta"]["source"] == "g.caffemodel"


@pytest.mark.parametrize(
    ("name", "kind", "loader"),
    [
        ("generator_small.caffemodel", "generator", load_generator),
        ("caffenet_conv.caffemodel", "caffenet", lambda p: load_comparator(p, kind="caffenet")),
        ("caffenet_conv_v1.caffemodel", "caffenet", lambda p: load_comparator(p, kind="caffenet")),
        ("discriminator.caffemodel", "discriminator", load_discriminator),
    ],
)
def test_convert_every_fixture_and_load_the_result(caffe_fixtures, tmp_path, name, kind, loader):
    out = convert_caffemodel(caffe_fixtures / name, tmp_path)  # a folder: <stem>.pt inside
    assert out == tmp_path / name.replace(".caffemodel", ".pt")
    assert torch.load(out, weights_only=True)["format"] == f"e2e-recon/{kind}"
    from_caffe, from_pt = loader(caffe_fixtures / name), loader(out)
    for key, value in from_caffe.state_dict().items():
        torch.testing.assert_close(from_pt.state_dict()[key], value, rtol=0, atol=0)
    if kind == "caffenet":
        assert "caffenet_conv" in from_pt.weights_label


def test_convert_with_released_style_prototxt(caffe_fixtures, tmp_path):
    prototxt = tmp_path / "generator_test.prototxt"
    text = (caffe_fixtures / "generator_small_test.prototxt").read_text()
    filler = 'type: "msra"\n    }\n    bias_filler'
    text = text.replace(filler, filler.replace('"msra"', '"msra"\n      msra_coeff: 1.8'))
    crop = (
        'layer { name: "crop" type: "CropSimple" bottom: "deconv0" top: "crop"\n'
        "  crop_param { crop_height: 227 crop_width: 227 } }\n"
    )
    prototxt.write_text(text + crop)
    assert "msra_coeff: 1.8" in text
    out = convert_caffemodel(
        caffe_fixtures / "generator_small.caffemodel", tmp_path / "g.pt", "generator", prototxt
    )
    assert load_generator(out).arch_kwargs()["fc_width"] == 256


def test_missing_layer_names_file_and_layer(tmp_path):
    blobs = module_to_blobs(tiny_generator())
    del blobs["deconv0"]
    path = write_caffemodel(tmp_path / "partial.caffemodel", blobs)
    with pytest.raises(ModelFormatError, match=r"partial\.caffemodel.*'deconv0' is missing"):
        load_generator(path)
    blobs = module_to_blobs(tiny_generator())
    del blobs["conv3_1"]
    path = write_caffemodel(tmp_path / "partial2.caffemodel", blobs)
    with pytest.raises(ModelFormatError, match=r"partial2\.caffemodel: layer 'conv3_1' is missing"):
        load_generator(path)


def test_wrong_blob_shape_names_file_layer_and_shapes(tmp_path):
    blobs = module_to_blobs(tiny_generator())
    blobs["deconv2"][0] = blobs["deconv2"][0][:, :1]  # (4, 1, 4, 4) instead of (4, 2, 4, 4)
    path = write_caffemodel(tmp_path / "bad.caffemodel", blobs)
    expected = r"bad\.caffemodel: layer 'deconv2' .*\(4, 1, 4, 4\).* expects \(4, 2, 4, 4\)"
    with pytest.raises(ModelFormatError, match=expected):
        load_generator(path)


def test_weights_that_disagree_with_the_prototxt(caffe_fixtures, tmp_path):
    prototxt = tmp_path / "generator_test.prototxt"
    text = (caffe_fixtures / "generator_small_test.prototxt").read_text()
    prototxt.write_text(text.replace("dim: 64", "dim: 100"))
    with pytest.raises(
        ModelFormatError, match=r"generator_small\.caffemodel: layer 'defc7'.*\(256, 100\)"
    ):
        load_generator(caffe_fixtures / "generator_small.caffemodel", prototxt)


def test_prototxt_of_another_architecture(caffe_fixtures, tmp_path):
    prototxt = tmp_path / "odd.prototxt"
    text = (caffe_fixtures / "generator_small_test.prototxt").read_text()
    prototxt.write_text(text.replace("num_output: 512", "num_output: 500"))
    with pytest.raises(
        ModelFormatError, match=r"odd\.prototxt: layer 'conv5_1' has num_output 500"
    ):
        load_generator(caffe_fixtures / "generator_small.caffemodel", prototxt)


def test_auto_kind_fails_clearly_and_kind_is_checked(tmp_path):
    path = write_caffemodel(tmp_path / "other.caffemodel", {"fc9": [np.zeros((2, 2), np.float32)]})
    with pytest.raises(ModelFormatError, match=r"other\.caffemodel: cannot tell which network"):
        convert_caffemodel(path, tmp_path / "o.pt")
    with pytest.raises(ConfigError, match="convert kind 'unet'"):
        convert_caffemodel(path, tmp_path / "o.pt", kind="unet")
    with pytest.raises(ModelFormatError, match=r"other\.caffemodel: layer 'Dconv1' is missing"):
        convert_caffemodel(path, tmp_path / "o.pt", kind="discriminator")
    assert not (tmp_path / "o.pt").exists()


def test_v1_legacy_generator_file(tmp_path):
    generator = tiny_generator()
    path = write_caffemodel(
        tmp_path / "v1.caffemodel", module_to_blobs(generator), v1=True, legacy_dims=True
    )
    assert read_caffemodel_blobs(path)["defc7"][0].shape == (1, 1, 32, 12)
    x = torch.randn(2, 12)
    with torch.no_grad():
        torch.testing.assert_close(load_generator(path)(x), generator(x), rtol=0, atol=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_name_the_layer(tmp_path, bad):
    blobs = module_to_blobs(tiny_generator())
    blobs["deconv1"][0].flat[3] = bad
    path = write_caffemodel(tmp_path / "nan.caffemodel", blobs)
    expected = r"nan\.caffemodel: layer 'deconv1' blob deconv1\.weight has 1 non-finite"
    with pytest.raises(ModelFormatError, match=expected):
        load_generator(path)
    with pytest.raises(ModelFormatError, match="layer 'deconv1'"):
        convert_caffemodel(path, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_non_finite_bias_of_the_discriminator_and_caffenet(tmp_path):
    from e2e_recon.nets.comparator import random_caffenet
    from e2e_recon.nets.discriminator import Discriminator

    for name, module, loader in (
        ("d", Discriminator(), load_discriminator),
        ("c", random_caffenet(), load_comparator),
    ):
        blobs = module_to_blobs(module)
        layer = next(iter(blobs))
        blobs[layer][1].flat[0] = np.nan
        path = write_caffemodel(tmp_path / f"{name}.caffemodel", blobs)
        with pytest.raises(ModelFormatError, match=f"layer '{layer}' blob {layer}.bias"):
            loader(path)
