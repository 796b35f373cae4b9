"""The prototxt reader: released-file fields, V1 layout, unparsable files."""

from __future__ import annotations

import pytest

from e2e_recon.caffe.prototxt import parse_prototxt, read_prototxt
from e2e_recon.errors import ModelFormatError

RELEASED_STYLE = """
force_backward: true
input: "feat"
input_shape { dim: 1 dim: 10 }
layer {
  name: "deconv0"  type: "Deconvolution"  bottom: "x"  top: "deconv0"
  param { lr_mult: 1 decay_mult: 0 }
  convolution_param {
    num_output: 3 pad: 1 kernel_size: 4 stride: 2
    weight_filler { type: "msra" msra_coeff: 1.8 }   # fork-only field
    bias_filler { type: "constant" }
    #engine: CUDNN
  }
}
layer {
  name: "deconv0_crop"
  type: "CropSimple"
  bottom: "deconv0"
  top: "deconv0_crop"
  crop_param { crop_height: 227 crop_width: 227 }
}
layer { name: "norm" type: "LRN" lrn_param { local_size: 5 alpha: 1e-4 beta: 0.75 } }
layer { name: "pool" type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
"""


def test_reads_fork_fields_of_the_released_files(tmp_path):
    path = tmp_path / "generator_test.prototxt"
    path.write_text(RELEASED_STYLE)
    net = read_prototxt(path)
    assert net.input_shape == [1, 10]
    deconv = net.layer("deconv0")
    assert (deconv.type, deconv.get("num_output"), deconv.get("kernel_size")) == (
        "Deconvolution", 3, 4,
    )  # fmt: skip
    assert deconv.get("weight_filler.msra_coeff") == pytest.approx(1.8)
    crop = net.layer("deconv0_crop")
    assert (crop.get("crop_height"), crop.get("crop_width")) == (227, 227)
    assert net.layer("norm").get("alpha") == pytest.approx(1e-4)
    assert net.layer("pool").get("pool") == "MAX"


def test_v1_layers_and_input_dim(tmp_path):
    path = tmp_path / "old.prototxt"
    path.write_text(
        'input: "data"\ninput_dim: 10\ninput_dim: 3\ninput_dim: 227\ninput_dim: 227\n'
        'layers { name: "conv1" type: CONVOLUTION convolution_param { num_output: 96 } }\n'
    )
    net = read_prototxt(path)
    assert net.input_shape == [10, 3, 227, 227]
    assert net.layer("conv1").type == "Convolution"


def test_reads_every_fixture_prototxt(caffe_fixtures):
    for path in sorted(caffe_fixtures.glob("*.prototxt")):
        net = read_prototxt(path)
        assert net.layers and net.input_shape, path.name


@pytest.mark.parametrize(
    "text",
    [
        'layer { name: "a" ',  # never closed
        'layer { name: "a" } }',  # one brace too many
        "layer { name: }",  # no value
        'layer { name: "a" type: @Conv }',  # unreadable token
    ],
)
def test_unparsable_prototxt_names_file_and_line(tmp_path, text):
    path = tmp_path / "broken.prototxt"
    path.write_text("# header\n" + text)
    with pytest.raises(ModelFormatError, match=r"broken\.prototxt, line \d+"):
        read_prototxt(path)


def test_a_file_without_layers_is_rejected(tmp_path):
    path = tmp_path / "solver.prototxt"
    path.write_text('base_lr: 0.0002\nnet: "train.prototxt"\n')
    with pytest.raises(ModelFormatError, match=r"solver\.prototxt: no 'layer' entries"):
        read_prototxt(path)


def test_missing_layer_names_file_and_layer(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(RELEASED_STYLE)
    with pytest.raises(ModelFormatError, match=r"net\.prototxt: layer 'defc7' is missing"):
        read_prototxt(path).layer("defc7")


def test_comments_strings_and_numbers():
    parsed = parse_prototxt("a: \"x # not a comment\" # comment\nb: -1.5e3 c: true d: 'q'")
    assert parsed == {"a": ["x # not a comment"], "b": [-1500.0], "c": [True], "d": ["q"]}
