"""The .caffemodel wire-format reader: format variants, bad files, fuzzing."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e_recon.caffe.wire import (
    parse_caffemodel,
    read_caffemodel,
    read_caffemodel_blobs,
    write_caffemodel,
)
from e2e_recon.errors import ModelFormatError


def small_layers(seed: int = 0) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {
        "conv1": [
            rng.normal(size=(4, 3, 2, 2)).astype(np.float32),
            rng.normal(size=4).astype(np.float32),
        ],
        "relu1": [],
        "fc": [rng.normal(size=(5, 16)).astype(np.float32), rng.normal(size=5).astype(np.float32)],
    }


@pytest.mark.parametrize("v1", [False, True])
@pytest.mark.parametrize("legacy_dims", [False, True])
@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("packed", [False, True])
def test_every_format_variant_round_trips(tmp_path, v1, legacy_dims, double, packed):
    layers = small_layers()
    types = {"conv1": "Convolution", "relu1": "ReLU", "fc": "InnerProduct"}
    path = write_caffemodel(
        tmp_path / "net.caffemodel", layers, types=types, v1=v1,
        legacy_dims=legacy_dims, double=double, packed=packed,
    )  # fmt: skip
    read = read_caffemodel(path)
    assert [layer.name for layer in read] == list(layers)
    assert [layer.type for layer in read] == list(types.values())
    for layer in read:
        for ours, original in zip(layer.blobs, layers[layer.name], strict=True):
            assert ours.dtype == np.float32
            expected_shape = (
                (1,) * (4 - original.ndim) + original.shape if legacy_dims else original.shape
            )
            assert ours.shape == expected_shape
            np.testing.assert_array_equal(ours.reshape(original.shape), original)


def test_blobs_by_layer_skip_layers_without_weights(tmp_path):
    path = write_caffemodel(tmp_path / "net.caffemodel", small_layers())
    assert list(read_caffemodel_blobs(path)) == ["conv1", "fc"]


def test_truncated_file_names_the_file(tmp_path):
    path = write_caffemodel(tmp_path / "net.caffemodel", small_layers())
    data = path.read_bytes()
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match=r"cut\.caffemodel.*(truncated|past the end)"):
        read_caffemodel(cut)


@pytest.mark.parametrize(
    "content",
    [b"", b"This is a text file, not a network.\n", b"\x89PNG\r\n\x1a\n" + bytes(100)],
)
def test_not_a_caffemodel(tmp_path, content):
    path = tmp_path / "photo.caffemodel"
    path.write_bytes(content)
    with pytest.raises(ModelFormatError, match=r"photo\.caffemodel"):
        read_caffemodel(path)


def test_missing_file_is_a_model_format_error(tmp_path):
    with pytest.raises(ModelFormatError, match=r"absent\.caffemodel"):
        read_caffemodel(tmp_path / "absent.caffemodel")


def test_huge_length_field_is_rejected_without_allocating():
    # A layer that claims to be 2**62 bytes long, in a 12-byte buffer.
    data = b"\xa2\x06" + bytes([0x80] * 8 + [0x40])  # field 100, length varint 2**62
    with pytest.raises(ModelFormatError, match="past the end"):
        parse_caffemodel(data, "huge")


def test_blob_shape_disagreeing_with_its_data_names_the_layer(tmp_path):
    path = write_caffemodel(tmp_path / "net.caffemodel", {"conv1": [np.zeros(6, np.float32)]})
    data = bytearray(path.read_bytes())
    shape_at = data.index(b"\x3a\x03\x0a\x01\x06")  # shape { dim: 6 }
    data[shape_at + 4] = 0x7F  # claims 127 values
    with pytest.raises(ModelFormatError, match=r"layer 'conv1' blob 0 declares shape \(127,\)"):
        parse_caffemodel(bytes(data), "bad")


def test_reads_the_real_fixture_formats(caffe_fixtures):
    current = read_caffemodel(caffe_fixtures / "caffenet_conv.caffemodel")
    old = read_caffemodel(caffe_fixtures / "caffenet_conv_v1.caffemodel")
    assert {layer.type for layer in old} >= {"Convolution", "Pooling", "LRN", "ReLU"}
    conv1_old = next(layer for layer in old if layer.name == "conv1")
    conv1_new = next(layer for layer in current if layer.name == "conv1")
    assert conv1_old.blobs[1].shape == (1, 1, 1, 96)  # legacy dims
    assert conv1_new.blobs[1].shape == (96,)


@functools.cache
def valid_model_bytes() -> bytes:
    """A small valid .caffemodel, as bytes, to mutate."""
    rng = np.random.default_rng(1)
    layers = {"a": [rng.normal(size=(3, 2)).astype(np.float32)], "b": [np.ones(2, np.float32)]}
    with tempfile.TemporaryDirectory() as folder:
        return write_caffemodel(Path(folder) / "seed.caffemodel", layers).read_bytes()


def parse_or_reject(data: bytes) -> None:
    """The reader either returns layers or raises ModelFormatError; nothing else."""
    try:
        layers = parse_caffemodel(data, "fuzz")
    except ModelFormatError:
        return
    for layer in layers:
        for blob in layer.blobs:
            assert blob.dtype == np.float32
            assert blob.nbytes <= 2 * len(data) + 64  # never far beyond the input size


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data):
    parse_or_reject(data)


@FUZZ
@given(st.data())
def test_fuzz_mutated_valid_file(data):
    original = bytearray(valid_model_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, max(len(original) - 1, 0)))
        if action == "flip" and original:
            original[at] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del original[at:]
        else:
            original[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    parse_or_reject(bytes(original))
