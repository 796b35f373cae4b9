"""Layer-by-layer agreement with real BVLC Caffe on the reference fixtures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from e2e_recon.caffe.wire import read_caffemodel_blobs
from e2e_recon.nets import load_comparator, load_discriminator, load_generator
from e2e_recon.nets.discriminator import CONV_LAYERS
from e2e_recon.nets.generator import Generator


def generator_blobs(generator: Generator, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Every named blob of the generator's forward pass, post-activation like Caffe's."""
    blobs: dict[str, np.ndarray] = {"feat": x.numpy()}
    last = generator.specs[-1].name

    def keep(name: str):
        def hook(_module, _inputs, output):
            out = output if name == last else F.leaky_relu(output, generator.leaky_slope)
            blobs[name] = out.detach().numpy()

        return hook

    for spec in generator.specs:
        getattr(generator, spec.name).register_forward_hook(keep(spec.name))
    with torch.no_grad():
        generator(x)
    blobs["reshape_defc5"] = blobs["defc5"].reshape(x.shape[0], -1, 4, 4)
    return blobs


@pytest.mark.parametrize("with_prototxt", [False, True])
def test_small_generator_matches_caffe_every_blob(
    caffe_fixtures, assert_matches_caffe, with_prototxt
):
    prototxt = caffe_fixtures / "generator_small_test.prototxt" if with_prototxt else None
    generator = load_generator(caffe_fixtures / "generator_small.caffemodel", prototxt)
    inputs = torch.from_numpy(np.load(caffe_fixtures / "generator_input.npy"))  # (4, 64)
    reference = np.load(caffe_fixtures / "generator_small_blobs_input0.npz")
    ours = generator_blobs(generator, inputs[:1])
    assert set(reference.files) <= set(ours)
    for name in reference.files:
        assert_matches_caffe(ours[name], reference[name], name)
    with torch.no_grad():
        output = generator(inputs).numpy()  # (4, 3, 256, 256)
    assert_matches_caffe(output, np.load(caffe_fixtures / "generator_small_deconv0.npy"), "deconv0")


def seeded_caffe_weights(generator: Generator, seed: int = 0) -> dict[str, torch.Tensor]:
    """The fixture README's weights: one default_rng(seed), layer order, weight then bias."""
    rng = np.random.default_rng(seed)
    state = {}
    for spec in generator.specs:
        layer = getattr(generator, spec.name)
        for suffix, std in (("weight", 0.05), ("bias", 0.1)):
            shape = tuple(getattr(layer, suffix).shape)  # Caffe's blob shape
            state[f"{spec.name}.{suffix}"] = torch.from_numpy(
                rng.normal(0.0, std, size=shape).astype(np.float32)
            )
    return state


def test_full_size_generator_from_documented_seed(caffe_fixtures, assert_matches_caffe):
    generator = Generator(n_voxels=64)  # published architecture: 4096-wide, 256 px
    generator.load_state_dict(seeded_caffe_weights(generator))
    inputs = torch.from_numpy(np.load(caffe_fixtures / "generator_input.npy"))
    with torch.no_grad():
        output = generator(inputs).numpy()
    assert_matches_caffe(output, np.load(caffe_fixtures / "generator_deconv0.npy"), "deconv0")


@pytest.mark.parametrize("weights", ["caffenet_conv.caffemodel", "caffenet_conv_v1.caffemodel"])
def test_caffenet_matches_caffe_every_layer(caffe_fixtures, assert_matches_caffe, weights):
    comparator = load_comparator(caffe_fixtures / weights, kind="caffenet")
    images = torch.from_numpy(np.load(caffe_fixtures / "caffenet_input.npy"))  # (2, 3, 227, 227)
    with torch.no_grad():
        features = comparator(images, layers=comparator.layer_names)
    assert list(features) == list(comparator.layer_names)
    for name, value in features.items():
        reference = np.load(caffe_fixtures / f"caffenet_{name}.npy")
        assert_matches_caffe(value.numpy(), reference, f"{weights}:{name}")


def test_caffenet_formats_hold_identical_weights(caffe_fixtures):
    current = read_caffemodel_blobs(caffe_fixtures / "caffenet_conv.caffemodel")
    old = read_caffemodel_blobs(caffe_fixtures / "caffenet_conv_v1.caffemodel")
    for name, blobs in current.items():
        for ours, theirs in zip(blobs, old[name], strict=True):
            np.testing.assert_array_equal(ours.reshape(-1), theirs.reshape(-1))


def test_discriminator_matches_caffe_every_blob(caffe_fixtures, assert_matches_caffe):
    discriminator = load_discriminator(caffe_fixtures / "discriminator.caffemodel")
    images = torch.from_numpy(np.load(caffe_fixtures / "discriminator_input.npy"))
    reference = np.load(caffe_fixtures / "discriminator_blobs.npz")
    ours: dict[str, np.ndarray] = {}
    relu_after = {name for name, *_ in CONV_LAYERS} | {"Dfc6"}

    def keep(name: str):
        def hook(_module, _inputs, output):
            ours[name] = (F.relu(output) if name in relu_after else output).detach().numpy()

        return hook

    for name, module in discriminator.named_children():
        module.register_forward_hook(keep(name))
    with torch.no_grad():
        logits = discriminator(images)
    ours["Dpool5_reshape"] = ours["Dpool5"].reshape(len(images), -1)
    for name in reference.files:
        assert_matches_caffe(ours[name], reference[name], name)
    assert_matches_caffe(logits.numpy(), np.load(caffe_fixtures / "discriminator_Dfc7.npy"), "Dfc7")
