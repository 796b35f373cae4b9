"""The public loaders: .pt round trips, comparator kinds, clear errors."""

from __future__ import annotations

import pytest
import torch

from e2e_recon.errors import ConfigError, ModelFormatError
from e2e_recon.nets import load_comparator, load_discriminator, load_generator
from e2e_recon.nets.discriminator import Discriminator
from e2e_recon.nets.generator import Generator
from e2e_recon.nets.loading import read_network_file, save_network


def test_generator_pt_round_trip(tmp_path):
    generator = Generator(n_voxels=7, fc_width=32, output_size_px=32, base_channels=8)
    path = save_network(generator, "generator", tmp_path / "sub" / "g.pt", {"note": "test"})
    assert not list(path.parent.glob("*.tmp"))
    loaded = load_generator(path)
    assert loaded.arch_kwargs() == generator.arch_kwargs() and not loaded.training
    x = torch.randn(2, 7)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), generator(x), rtol=0, atol=0)
    payload = read_network_file(path, "generator")
    assert payload["meta"] == {"note": "test"} and payload["version"] == 1


def test_discriminator_pt_round_trip(tmp_path):
    discriminator = Discriminator(input_size_px=64)
    path = save_network(discriminator, "discriminator", tmp_path / "d.pt")
    loaded = load_discriminator(path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), discriminator.eval()(x), rtol=0, atol=0)


def test_wrong_kind_of_pt_file(tmp_path):
    path = save_network(Discriminator(input_size_px=64), "discriminator", tmp_path / "d.pt")
    with pytest.raises(ModelFormatError, match=r"d\.pt: format is 'e2e-recon/discriminator'"):
        load_generator(path)
    with pytest.raises(ModelFormatError, match=r"missing\.pt: no such file"):
        load_generator(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 10)
    with pytest.raises(ModelFormatError, match=r"junk\.pt: cannot read"):
        load_discriminator(junk)


def test_pt_with_wrong_shapes_names_the_layer(tmp_path):
    generator = Generator(n_voxels=7, fc_width=32, output_size_px=16, base_channels=8)
    path = save_network(generator, "generator", tmp_path / "g.pt")
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["deconv1.weight"] = torch.zeros(2, 2, 4, 4)
    torch.save(payload, path)
    with pytest.raises(ModelFormatError, match=r"g\.pt: layer 'deconv1'"):
        load_generator(path)


def test_comparator_kinds(monkeypatch):
    random = load_comparator(kind="random-caffenet")
    assert "RANDOM" in random.weights_label
    with pytest.raises(ConfigError, match="needs a weights file"):
        load_comparator(kind="caffenet")
    with pytest.raises(ConfigError, match="'vgg'"):
        load_comparator(kind="vgg")
    calls = []
    import e2e_recon.nets.efficientnet_lite as efficientnet_lite

    monkeypatch.setattr(efficientnet_lite, "load_efficientnet_lite", lambda v: calls.append(v) or v)
    assert load_comparator(kind="efficientnet-lite2") == "lite2"
    assert calls == ["lite2"]


def test_caffenet_pt_keeps_its_label(tmp_path):
    from e2e_recon.nets.comparator import random_caffenet

    net = random_caffenet(seed=1)
    path = save_network(net, "caffenet", tmp_path / "c.pt", {"weights_label": net.weights_label})
    loaded = load_comparator(path, kind="caffenet")
    assert loaded.weights_label == net.weights_label
    assert torch.equal(loaded.conv5.weight, net.conv5.weight)
