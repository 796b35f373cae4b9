"""Load the three networks from released Caffe files or the project's ``.pt`` files.

``.caffemodel`` files are read directly (see :mod:`e2e_recon.caffe.convert`),
so no conversion step is needed; anything else is read as the project's own
format::

    {"format": "e2e-recon/<kind>", "version": 1, "arch": {...}, "state_dict": {...},
     "meta": {...}}

loadable with ``torch.load(weights_only=True)``. The format itself (the
state-dict check and the writer) lives in :mod:`e2e_recon.nets.netfile`, which
the Caffe converter shares; this module imports the converter, never the
reverse.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from e2e_recon.errors import ConfigError, ModelFormatError
from e2e_recon.load_errors import describe_load_error
from e2e_recon.nets.comparator import CaffeNet, load_alexnet, random_caffenet
from e2e_recon.nets.discriminator import Discriminator
from e2e_recon.nets.generator import Generator
from e2e_recon.nets.netfile import FORMAT_VERSION, load_state_checked, save_network
from e2e_recon.nets.shared import is_shared_arch, subject_generator

__all__ = [
    "COMPARATOR_KINDS",
    "FORMAT_VERSION",
    "load_comparator",
    "load_discriminator",
    "load_generator",
    "load_state_checked",
    "read_network_file",
    "save_network",
]

COMPARATOR_KINDS = (
    "caffenet", "alexnet", "random-caffenet", "efficientnet-lite0", "efficientnet-lite2",
)  # fmt: skip


def read_network_file(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Read and check a project ``.pt`` network file of the given kind.

    For ``kind="generator"`` a training snapshot is accepted too (its generator).

    Returns
    -------
    dict with keys "format", "version", "arch", "state_dict", "meta" (and "norm" if any).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: no such file (expected a {kind} .pt or .caffemodel).")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise ModelFormatError(
            f"{path}: cannot read as an e2e-recon .pt file ({describe_load_error(err)}). "
            "A Caffe model must end in .caffemodel."
        ) from err
    expected = f"e2e-recon/{kind}"
    found = payload.get("format") if isinstance(payload, dict) else None
    from e2e_recon.train.checkpoint import CHECKPOINT_FORMAT, generator_file_payload
    from e2e_recon.train.integrity import seal_status

    if seal_status(payload) is False:
        raise ModelFormatError(
            f"{path}: corrupt: its content does not match its SHA-256 checksum. Use an "
            "earlier snapshot, or export the generator again from a good one."
        )

    if kind == "generator" and found == CHECKPOINT_FORMAT:
        # A training snapshot: take its generator, so snapshot folders reconstruct directly.
        payload, found = generator_file_payload(payload), expected
    if found != expected or not isinstance(payload.get("state_dict"), dict):
        raise ModelFormatError(
            f"{path}: format is {found!r}, expected {expected!r}. Convert Caffe files with "
            "`e2e-recon convert`, or pass the file of the right network."
        )
    if payload.get("version", 0) > FORMAT_VERSION:
        raise ModelFormatError(
            f"{path}: format version {payload['version']} is newer than this e2e-recon "
            f"understands ({FORMAT_VERSION}); upgrade e2e-recon."
        )
    return payload


# The Caffe converter is imported inside the loaders, not at the top: importing
# e2e_recon.caffe.convert first runs this package's __init__, which imports this
# module; a top-level import back into the half-initialised converter would fail.


def _is_caffemodel(path: Path) -> bool:
    return path.suffix.lower() == ".caffemodel"


def load_generator(
    path: str | os.PathLike[str],
    prototxt: str | os.PathLike[str] | None = None,
    subject: str | None = None,
) -> Generator:
    """Load a generator from a released ``.caffemodel`` or a project ``.pt``.

    Parameters
    ----------
    path : ``generator.caffemodel`` or ``.pt``
    prototxt : optional ``generator_test.prototxt``; when given, the architecture
        is read from it and the weights are checked against it.
    subject : for a shared generator file (several subjects' input layers), the
        subject whose input layer to use; optional when the file holds one subject.
        One-subject files and ``.caffemodel`` files ignore it.

    Returns
    -------
    Generator in eval mode; (B, n_voxels) -> (B, 3, S, S) Caffe space, uncropped.
    A subject of a shared file carries its name in ``.subject``.

    Raises
    ------
    ModelFormatError
        A shared file without ``subject`` when it holds several, or without that
        subject: the message lists the subjects it holds.
    """
    path = Path(path)
    if _is_caffemodel(path):
        from e2e_recon.caffe.convert import generator_from_caffe

        return generator_from_caffe(path, prototxt).eval()
    payload = read_network_file(path, "generator")
    if is_shared_arch(payload["arch"]):
        return subject_generator(payload["arch"], payload["state_dict"], subject, str(path))
    try:
        with torch.device("meta"):  # weights come from the file: skip the random init
            generator = Generator(**payload["arch"])
    except (TypeError, ConfigError) as err:
        raise ModelFormatError(
            f"{path}: bad generator architecture {payload['arch']} ({err})."
        ) from err
    load_state_checked(generator, payload["state_dict"], str(path))
    return generator.eval()


def load_discriminator(path: str | os.PathLike[str]) -> Discriminator:
    """Load a discriminator from a released ``.caffemodel`` or a project ``.pt``.

    Returns
    -------
    Discriminator in eval mode; (B, 3, 227, 227) Caffe space -> (B, 2) logits.
    """
    path = Path(path)
    if _is_caffemodel(path):
        from e2e_recon.caffe.convert import discriminator_from_caffe

        return discriminator_from_caffe(path).eval()
    payload = read_network_file(path, "discriminator")
    try:
        with torch.device("meta"):
            discriminator = Discriminator(**payload["arch"])
    except (TypeError, ConfigError) as err:
        raise ModelFormatError(f"{path}: bad discriminator architecture ({err}).") from err
    load_state_checked(discriminator, payload["state_dict"], str(path))
    return discriminator.eval()


def load_comparator(
    path: str | os.PathLike[str] | None = None, kind: str = "caffenet"
) -> nn.Module:
    """Load a frozen comparator.

    Parameters
    ----------
    path : weights file; for "caffenet" a ``.caffemodel`` (e.g.
        ``bvlc_reference_caffenet.caffemodel``) or a converted ``.pt``; for
        "alexnet" torchvision's ``alexnet-owt-*.pth``; unused by the other kinds.
    kind : "caffenet", "alexnet", "random-caffenet", "efficientnet-lite0",
        "efficientnet-lite2"

    Returns
    -------
    nn.Module with ``forward(x, layers=("pool5",)) -> dict``, ``layer_names`` and
    ``weights_label``; frozen, in eval mode.
    """
    if kind not in COMPARATOR_KINDS:
        raise ConfigError(f"comparator kind {kind!r}: choose one of {list(COMPARATOR_KINDS)}.")
    if kind == "random-caffenet":
        return random_caffenet(seed=0)
    if kind.startswith("efficientnet-"):
        from e2e_recon.nets.efficientnet_lite import load_efficientnet_lite

        return load_efficientnet_lite(kind.removeprefix("efficientnet-"))
    if path is None:
        raise ConfigError(
            f"comparator kind {kind!r} needs a weights file: give its path, or use kind "
            "'random-caffenet' (random weights) or 'efficientnet-lite0' to run offline."
        )
    path = Path(path)
    if kind == "alexnet":
        return load_alexnet(path)
    if _is_caffemodel(path):
        from e2e_recon.caffe.convert import caffenet_from_caffe

        return caffenet_from_caffe(path)
    payload = read_network_file(path, "caffenet")
    label = payload.get("meta", {}).get("weights_label", f"CaffeNet, weights {path.name}")
    with torch.device("meta"):
        net = CaffeNet(weights_label=str(label))
    load_state_checked(net, payload["state_dict"], str(path))
    return net
