"""The project's ``.pt`` network file: write one, and check a state dict against a module.

Shared by the loaders (:mod:`e2e_recon.nets.loading`) and the Caffe converter
(:mod:`e2e_recon.caffe.convert`). It imports neither, so the two depend on it
and the loaders alone depend on the converter: no import cycle.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from e2e_recon.errors import ModelFormatError
from e2e_recon.fileio import atomic_path

FORMAT_VERSION = 1


def load_state_checked(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy a state dict into ``module`` after checking every name and shape.

    Frozen parameters (the generator's transposed-convolution biases) are copied too.
    If ``module`` was built on the meta device, the tensors are assigned instead.

    Raises
    ------
    ModelFormatError
        Naming the file and the first missing, unexpected or mis-shaped entry.
    """
    own = module.state_dict()
    missing = [key for key in own if key not in state]
    if missing:
        raise ModelFormatError(
            f"{source}: layer '{missing[0].rsplit('.', 1)[0]}' ({missing[0]}) is missing; "
            f"this file does not hold a {type(module).__name__} of this architecture."
        )
    for key, tensor in state.items():
        if key not in own:
            raise ModelFormatError(
                f"{source}: unexpected entry '{key}' for {type(module).__name__}."
            )
        if tuple(tensor.shape) != tuple(own[key].shape):
            raise ModelFormatError(
                f"{source}: layer '{key.rsplit('.', 1)[0]}' has {key} of shape "
                f"{tuple(tensor.shape)}, but the architecture expects {tuple(own[key].shape)}."
            )
    # A module built on the meta device (no memory, no random init) takes the
    # tensors as they are: the weights are not copied a second time.
    assign = any(tensor.is_meta for tensor in own.values())
    if assign:
        state = {key: tensor.to(dtype=own[key].dtype) for key, tensor in state.items()}
    module.load_state_dict(state, strict=True, assign=assign)


def save_network(
    module: nn.Module, kind: str, path: str | os.PathLike[str], meta: dict[str, Any] | None = None
) -> Path:
    """Write a network in the project's ``.pt`` format, atomically.

    Parameters
    ----------
    module : Generator, Discriminator or CaffeNet
    kind : "generator", "discriminator" or "caffenet"
    path : output file
    meta : plain values (provenance)

    Returns
    -------
    Path of the written file.
    """
    path = Path(path)
    arch_kwargs = getattr(module, "arch_kwargs", None)
    arch = arch_kwargs() if callable(arch_kwargs) else {}
    payload = {
        "format": f"e2e-recon/{kind}",
        "version": FORMAT_VERSION,
        "arch": arch,
        "state_dict": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
        "meta": dict(meta or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path
