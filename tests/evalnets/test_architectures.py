"""Each evaluation network has exactly the parameter names and shapes of its reference.

The expected names are generated here from the reference code's own tables
(torchvision's ``alexnet``, ``vgg19``, ``resnet50``, ``inception_v3`` and
``efficientnet_b1``; openai/CLIP's ``VisionTransformer``), independently of the
package's modules, and the totals are torchvision's published parameter counts
(``num_params`` of each weights entry), so a renamed or resized layer fails.
"""

from __future__ import annotations

import math

import pytest
import torch

from e2e_recon.evalnets.clip_vit import VisionTransformer, ViTShape
from e2e_recon.evalnets.convnets import VGG19, AlexNet, ResNet50
from e2e_recon.evalnets.efficientnet import EfficientNetB1
from e2e_recon.evalnets.inception import InceptionV3

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

#: torchvision's ``num_params`` of the weights each suite uses.
PUBLISHED_PARAMS = {
    "alexnet": 61_100_840,
    "vgg19": 143_667_240,
    "resnet50": 25_557_032,
    "inception_v3": 27_161_264,
    "efficientnet_b1": 7_794_184,
}


def _shapes(net: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _bn(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{n}": (() if n == "num_batches_tracked" else (channels,)) for n in BN}


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def expected_alexnet() -> dict[str, tuple[int, ...]]:
    convs = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
    out: dict[str, tuple[int, ...]] = {}
    for i, (o, c, k) in convs.items():
        out[f"features.{i}.weight"], out[f"features.{i}.bias"] = (o, c, k, k), (o,)
    for i, (o, c) in {1: (4096, 9216), 4: (4096, 4096), 6: (1000, 4096)}.items():
        out[f"classifier.{i}.weight"], out[f"classifier.{i}.bias"] = (o, c), (o,)
    return out


def expected_vgg19() -> dict[str, tuple[int, ...]]:
    # torchvision cfgs["E"]; indices advance by 2 per conv (conv, ReLU) and 1 per pool.
    cfg = [64, 64, "M", 128, 128, "M"] + [256] * 4 + ["M"] + ([512] * 4 + ["M"]) * 2
    out: dict[str, tuple[int, ...]] = {}
    index, channels = 0, 3
    for v in cfg:
        if v == "M":
            index += 1
            continue
        out[f"features.{index}.weight"], out[f"features.{index}.bias"] = (v, channels, 3, 3), (v,)
        index, channels = index + 2, int(v)
    for i, (o, c) in {0: (4096, 25088), 3: (4096, 4096), 6: (1000, 4096)}.items():
        out[f"classifier.{i}.weight"], out[f"classifier.{i}.bias"] = (o, c), (o,)
    return out


def expected_resnet50(fc: bool = True) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    inplanes = 64
    for layer, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for b in range(blocks):
            p = f"layer{layer}.{b}"
            out[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            out[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            out[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            for n, ch in ((1, planes), (2, planes), (3, planes * 4)):
                out.update(_bn(f"{p}.bn{n}", ch))
            if b == 0:
                out[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                out.update(_bn(f"{p}.downsample.1", planes * 4))
            inplanes = planes * 4
    if fc:
        out["fc.weight"], out["fc.bias"] = (1000, 2048), (1000,)
    return out


INCEPTION_BRANCHES = {
    "A": ["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2",
          "branch3x3dbl_3", "branch_pool"],
    "B": ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"],
    "C": ["branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", "branch7x7dbl_1",
          "branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5", "branch_pool"],
    "D": ["branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3",
          "branch7x7x3_4"],
    "E": ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1",
          "branch3x3dbl_2", "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"],
    "Aux": ["conv0", "conv1"],
}  # fmt: skip
INCEPTION_BLOCKS = {
    "Mixed_5b": "A", "Mixed_5c": "A", "Mixed_5d": "A", "Mixed_6a": "B", "Mixed_6b": "C",
    "Mixed_6c": "C", "Mixed_6d": "C", "Mixed_6e": "C", "AuxLogits": "Aux", "Mixed_7a": "D",
    "Mixed_7b": "E", "Mixed_7c": "E",
}  # fmt: skip


def expected_inception_keys() -> set[str]:
    convs = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
    for block, kind in INCEPTION_BLOCKS.items():
        convs += [f"{block}.{branch}" for branch in INCEPTION_BRANCHES[kind]]
    keys = {f"{c}.conv.weight" for c in convs} | {f"{c}.bn.{n}" for c in convs for n in BN}
    return keys | {"AuxLogits.fc.weight", "AuxLogits.fc.bias", "fc.weight", "fc.bias"}


def expected_efficientnet_b1_keys() -> set[str]:
    """torchvision's efficientnet_b1: B0 table (expand, layers), depth x1.1 rounded up."""
    table = [(1, 1), (6, 2), (6, 2), (6, 3), (6, 3), (6, 4), (6, 1)]
    keys = {"features.0.0.weight"} | {f"features.0.1.{n}" for n in BN}
    for stage, (expand, layers) in enumerate(table, start=1):
        for block in range(math.ceil(layers * 1.1)):
            p = f"features.{stage}.{block}.block"
            units = ["dw", "se", "project"] if expand == 1 else ["expand", "dw", "se", "project"]
            for i, unit in enumerate(units):
                if unit == "se":
                    keys |= {f"{p}.{i}.fc{j}.{n}" for j in (1, 2) for n in ("weight", "bias")}
                else:
                    keys |= {f"{p}.{i}.0.weight"} | {f"{p}.{i}.1.{n}" for n in BN}
    keys |= {"features.8.0.weight"} | {f"features.8.1.{n}" for n in BN}
    return keys | {"classifier.1.weight", "classifier.1.bias"}


def expected_clip_vit_l14() -> dict[str, tuple[int, ...]]:
    width, layers = 1024, 24
    out: dict[str, tuple[int, ...]] = {
        "class_embedding": (width,),
        "positional_embedding": (257, width),
        "proj": (width, 768),
        "conv1.weight": (width, 3, 14, 14),
    }
    for ln in ("ln_pre", "ln_post"):
        out[f"{ln}.weight"] = out[f"{ln}.bias"] = (width,)
    for i in range(layers):
        p = f"transformer.resblocks.{i}"
        out[f"{p}.attn.in_proj_weight"] = (3 * width, width)
        out[f"{p}.attn.in_proj_bias"] = (3 * width,)
        out[f"{p}.attn.out_proj.weight"] = (width, width)
        out[f"{p}.attn.out_proj.bias"] = (width,)
        out[f"{p}.mlp.c_fc.weight"], out[f"{p}.mlp.c_fc.bias"] = (4 * width, width), (4 * width,)
        out[f"{p}.mlp.c_proj.weight"], out[f"{p}.mlp.c_proj.bias"] = (width, 4 * width), (width,)
        for ln in ("ln_1", "ln_2"):
            out[f"{p}.{ln}.weight"] = out[f"{p}.{ln}.bias"] = (width,)
    return out


def test_alexnet_vgg19_resnet50_keys_and_shapes() -> None:
    for net, expected, published in (
        (AlexNet(), expected_alexnet(), "alexnet"),
        (VGG19(), expected_vgg19(), "vgg19"),
        (ResNet50(), expected_resnet50(), "resnet50"),
    ):
        assert _shapes(net) == expected
        assert _count(net) == PUBLISHED_PARAMS[published]
    assert _shapes(ResNet50(num_classes=None)) == expected_resnet50(fc=False)


def test_inception_v3_keys_and_size() -> None:
    net = InceptionV3()
    shapes = _shapes(net)
    assert set(shapes) == expected_inception_keys()
    assert _count(net) == PUBLISHED_PARAMS["inception_v3"]
    assert shapes["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert shapes["Mixed_7c.branch_pool.conv.weight"] == (192, 2048, 1, 1)
    assert shapes["AuxLogits.conv1.conv.weight"] == (768, 128, 5, 5)
    assert shapes["fc.weight"] == (1000, 2048)


def test_efficientnet_b1_keys_and_size() -> None:
    net = EfficientNetB1()
    shapes = _shapes(net)
    assert set(shapes) == expected_efficientnet_b1_keys()
    assert _count(net) == PUBLISHED_PARAMS["efficientnet_b1"]
    assert shapes["features.1.0.block.1.fc1.weight"] == (8, 32, 1, 1)  # SE to input // 4
    assert shapes["features.6.4.block.1.0.weight"] == (1152, 1, 5, 5)  # depthwise
    assert shapes["features.8.0.weight"] == (1280, 320, 1, 1)


def test_clip_vit_l14_keys_and_shapes() -> None:
    net = VisionTransformer()
    assert _shapes(net) == expected_clip_vit_l14()
    assert ViTShape.from_state_dict(net.state_dict()) == ViTShape()


@pytest.mark.parametrize(
    ("net", "size_px", "node_shapes"),
    [
        (AlexNet(), 256, {"features.4": (192, 31, 31), "features.11": (256, 15, 15)}),
        (InceptionV3(), 342, {"avgpool": (2048, 1, 1)}),
        (EfficientNetB1(), 255, {"avgpool": (1280, 1, 1)}),
        (ResNet50(num_classes=None), 224, {"avgpool": (2048, 1, 1)}),
    ],
    ids=["alexnet", "inception", "efficientnet", "resnet"],
)
def test_feature_shapes_at_the_benchmark_sizes(
    net: torch.nn.Module, size_px: int, node_shapes: dict[str, tuple[int, ...]]
) -> None:
    captured = {}
    modules = dict(net.named_modules())
    for name in node_shapes:
        modules[name].register_forward_hook(
            lambda _m, _i, out, name=name: captured.__setitem__(name, tuple(out.shape[1:]))
        )
    with torch.inference_mode():
        net.eval()(torch.zeros(1, 3, size_px, size_px))
    assert captured == node_shapes
