"""Caffe blobs -> the project's networks, and ``.caffemodel`` -> ``.pt`` conversion.

Caffe blob layouts equal PyTorch's for every layer used here: fully connected
(out, in), convolution (out, in / group, kh, kw), transposed convolution
(in, out, kh, kw) as in ``ConvTranspose2d`` (no kernel flip). Old V1 files store
4-D legacy shapes such as (1, 1, out, in) or (1, 1, 1, out); leading ones are
dropped when the rest matches.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from e2e_recon.caffe.prototxt import NetDef, read_prototxt
from e2e_recon.caffe.wire import read_caffemodel_blobs
from e2e_recon.errors import ConfigError, ModelFormatError
from e2e_recon.nets.comparator import CaffeNet
from e2e_recon.nets.discriminator import Discriminator
from e2e_recon.nets.generator import Generator, generator_layer_specs
from e2e_recon.nets.netfile import load_state_checked, save_network

KINDS = ("generator", "discriminator", "caffenet")
#: Parameter blobs by layer name, as read by :func:`read_caffemodel_blobs`.
Blobs = dict[str, list[np.ndarray]]


def _fit_blob(blob: np.ndarray, expected: tuple[int, ...], source: str, name: str) -> np.ndarray:
    """Return ``blob`` in the expected shape, dropping legacy leading ones."""
    shape = tuple(blob.shape)
    while len(shape) > len(expected) and shape[0] == 1:
        shape = shape[1:]
    if shape != expected:
        raise ModelFormatError(
            f"{source}: layer '{name.rsplit('.', 1)[0]}' blob {name} has shape "
            f"{tuple(blob.shape)}, but the architecture expects {expected}."
        )
    return blob.reshape(expected)


def _require_finite(blob: np.ndarray, source: str, name: str) -> None:
    """Refuse NaN or inf weights: every output of the network would be NaN."""
    bad = ~np.isfinite(blob)
    if bad.any():
        raise ModelFormatError(
            f"{source}: layer '{name.rsplit('.', 1)[0]}' blob {name} has {int(bad.sum())} "
            f"non-finite values (NaN or inf) of {blob.size}; the weights are damaged. "
            "Download or convert the model again."
        )


def module_to_blobs(module: nn.Module) -> dict[str, list[np.ndarray]]:
    """A network's parameters as Caffe blobs by layer name (weight, then bias).

    The inverse of :func:`blobs_to_state` for the project's networks, whose
    parameter names are the Caffe layer names; with
    :func:`e2e_recon.caffe.wire.write_caffemodel` it writes a ``.caffemodel``
    (used to test the reader and the loaders).
    """
    blobs: dict[str, list[np.ndarray]] = {}
    for key, value in module.state_dict().items():
        blobs.setdefault(key.rsplit(".", 1)[0], []).append(value.detach().cpu().numpy().copy())
    return blobs


def blobs_to_state(
    module: nn.Module, blobs: dict[str, list[np.ndarray]], source: str
) -> dict[str, torch.Tensor]:
    """State dict for ``module`` from Caffe blobs named like its layers.

    A layer's blob 0 is its weight, blob 1 its bias (kept at zero when absent).

    Raises
    ------
    ModelFormatError
        Naming the file and the layer that is missing, has a wrong shape, or holds
        NaN or inf values.
    """
    own = module.state_dict()
    layers = list(dict.fromkeys(key.rsplit(".", 1)[0] for key in own))
    state: dict[str, torch.Tensor] = {}
    for layer in layers:
        if layer not in blobs:
            found = sorted(blobs)
            raise ModelFormatError(
                f"{source}: layer '{layer}' is missing from the weights (layers with "
                f"weights: {found}). Is this the right kind of network?"
            )
        params = blobs[layer]
        if not 1 <= len(params) <= 2:
            raise ModelFormatError(
                f"{source}: layer '{layer}' has {len(params)} blobs, expected weight and bias."
            )
        for suffix, blob in zip(("weight", "bias"), params, strict=False):
            key = f"{layer}.{suffix}"
            fitted = _fit_blob(blob, tuple(own[key].shape), source, key)
            _require_finite(fitted, source, key)
            state[key] = torch.from_numpy(fitted)
        state.setdefault(f"{layer}.bias", torch.zeros(tuple(own[f"{layer}.bias"].shape)))
    return state


def _first_deconv_base(name: str, out_channels: int) -> int:
    """``base_channels`` that gives ``out_channels`` to the first (deepest) stage."""
    stage = int(name.removeprefix("deconv"))
    return out_channels if stage >= 4 else out_channels * 2 ** (4 - stage)


def generator_arch_from_blobs(blobs: Blobs, source: str) -> dict[str, Any]:
    """Generator keyword arguments inferred from blob shapes alone."""
    if "defc7" not in blobs or not blobs["defc7"]:
        raise ModelFormatError(f"{source}: layer 'defc7' is missing; not a generator.")
    fc_width, n_voxels = blobs["defc7"][0].shape[-2:]
    stages = sorted(
        (int(n.removeprefix("deconv")) for n in blobs if n.removeprefix("deconv").isdigit()),
        reverse=True,
    )
    if not stages or stages[-1] != 0:
        raise ModelFormatError(f"{source}: layer 'deconv0' is missing; not a generator.")
    first = f"deconv{stages[0]}"
    base = _first_deconv_base(first, int(blobs[first][0].shape[1])) if stages[0] else 256
    return {
        "n_voxels": int(n_voxels),
        "fc_width": int(fc_width),
        "output_size_px": 4 * 2 ** (stages[0] + 1),
        "base_channels": base,
    }


def _check_layer(net: NetDef, name: str, expected: dict[str, Any]) -> None:
    layer = net.layer(name)
    for key, value in expected.items():
        default = {"stride": 1, "pad": 0}.get(key)
        found = layer.get(key, default)
        if found != value:
            raise ModelFormatError(
                f"{net.source}: layer '{name}' has {key} {found}, but this generator "
                f"architecture needs {value}."
            )


def generator_arch_from_prototxt(net: NetDef) -> dict[str, Any]:
    """Generator keyword arguments read from a prototxt, with every layer checked."""
    deconvs = [
        x.name
        for x in net.layers
        if x.type == "Deconvolution" and x.name.removeprefix("deconv").isdigit()
    ]
    if len(net.input_shape) < 2 or not deconvs or "defc7" not in [x.name for x in net.layers]:
        raise ModelFormatError(
            f"{net.source}: not a generator prototxt (needs an input shape, 'defc7' "
            "and 'deconvN' layers)."
        )
    first = net.layer(deconvs[0])
    relus = [x for x in net.layers if x.type == "ReLU"]
    arch = {
        "n_voxels": int(net.input_shape[1]),
        "fc_width": int(net.layer("defc7").get("num_output", 0)),
        "output_size_px": 4 * 2 ** len(deconvs),
        "base_channels": _first_deconv_base(first.name, int(first.get("num_output", 0))),
        "leaky_slope": float(relus[0].get("negative_slope", 0.0)) if relus else 0.3,
    }
    try:
        specs = generator_layer_specs(
            arch["fc_width"], arch["output_size_px"], arch["base_channels"]
        )
    except ConfigError as err:
        raise ModelFormatError(f"{net.source}: unsupported generator ({err}).") from err
    for spec in specs:
        expected: dict[str, Any] = {"num_output": spec.out_channels}
        if spec.kind != "fc":
            expected |= {"kernel_size": spec.kernel, "stride": spec.stride, "pad": spec.pad}
        _check_layer(net, spec.name, expected)
    return arch


def generator_from_caffe(
    caffemodel: str | os.PathLike[str],
    prototxt: str | os.PathLike[str] | None = None,
    blobs: Blobs | None = None,
) -> Generator:
    """Generator with the weights of a ``.caffemodel`` (architecture from the
    prototxt when given, else from the blob shapes; ``blobs`` if already read)."""
    source = str(caffemodel)
    blobs = read_caffemodel_blobs(caffemodel) if blobs is None else blobs
    if prototxt is not None:
        arch = generator_arch_from_prototxt(read_prototxt(prototxt))
    else:
        arch = generator_arch_from_blobs(blobs, source)
    with torch.device("meta"):  # weights come from the file: skip the random init
        generator = Generator(**arch)
    load_state_checked(generator, blobs_to_state(generator, blobs, source), source)
    return generator


def discriminator_from_caffe(
    caffemodel: str | os.PathLike[str],
    prototxt: str | os.PathLike[str] | None = None,
    blobs: Blobs | None = None,
) -> Discriminator:
    """Discriminator with the weights of a ``.caffemodel`` (input size from the
    prototxt when given, else 227)."""
    size = 227
    if prototxt is not None:
        shape = read_prototxt(prototxt).input_shape
        size = int(shape[-1]) if len(shape) == 4 else size
    source = str(caffemodel)
    with torch.device("meta"):
        discriminator = Discriminator(input_size_px=size)
    blobs = read_caffemodel_blobs(caffemodel) if blobs is None else blobs
    load_state_checked(discriminator, blobs_to_state(discriminator, blobs, source), source)
    return discriminator


def caffenet_from_caffe(caffemodel: str | os.PathLike[str], blobs: Blobs | None = None) -> CaffeNet:
    """CaffeNet comparator (to pool5) with the weights of a ``.caffemodel``
    (current or V1 format; the fully connected layers are ignored)."""
    path = Path(caffemodel)
    with torch.device("meta"):
        net = CaffeNet(weights_label=f"CaffeNet, weights {path.stem}")
    blobs = read_caffemodel_blobs(path) if blobs is None else blobs
    load_state_checked(net, blobs_to_state(net, blobs, str(path)), str(path))
    return net


def detect_kind(blobs: Blobs, source: str) -> str:
    """Which network a set of blobs belongs to: generator, discriminator or caffenet."""
    if "defc7" in blobs and "deconv0" in blobs:
        return "generator"
    if "Dconv1" in blobs and "Dfc7" in blobs:
        return "discriminator"
    if all(f"conv{i}" in blobs for i in range(1, 6)):
        return "caffenet"
    raise ModelFormatError(
        f"{source}: cannot tell which network this is (layers with weights: {sorted(blobs)}); "
        "expected a generator (defc7 ... deconv0), a discriminator (Dconv1 ... Dfc7) "
        "or CaffeNet (conv1 ... conv5). Pass kind explicitly."
    )


def convert_caffemodel(
    caffemodel: Path,
    out: Path,
    kind: str = "auto",
    prototxt: Path | None = None,
) -> Path:
    """Convert a released ``.caffemodel`` into the project's ``.pt`` format.

    Parameters
    ----------
    caffemodel : input ``.caffemodel`` (current or V1 format)
    out : output ``.pt`` file, written atomically; a directory gets ``<stem>.pt``
    kind : "generator", "discriminator", "caffenet" or "auto" (from layer names)
    prototxt : optional network prototxt (generator architecture / discriminator
        input size); the fork-only fields of the released files are accepted.

    Returns
    -------
    Path of the written ``.pt`` file.
    """
    caffemodel, out = Path(caffemodel), Path(out)
    if kind not in (*KINDS, "auto"):
        raise ConfigError(f"convert kind {kind!r}: choose one of {[*KINDS, 'auto']}.")
    blobs = read_caffemodel_blobs(caffemodel)
    if kind == "auto":
        kind = detect_kind(blobs, str(caffemodel))
    module: nn.Module
    if kind == "generator":
        module = generator_from_caffe(caffemodel, prototxt, blobs)
    elif kind == "discriminator":
        module = discriminator_from_caffe(caffemodel, prototxt, blobs)
    else:
        module = caffenet_from_caffe(caffemodel, blobs)
    if out.is_dir():
        out = out / f"{caffemodel.stem}.pt"
    meta: dict[str, Any] = {"source": caffemodel.name, "converted_from": "caffemodel"}
    if isinstance(module, CaffeNet):
        meta["weights_label"] = module.weights_label
    return save_network(module, kind, out, meta)
