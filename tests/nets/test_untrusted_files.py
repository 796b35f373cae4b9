"""PyTorch files holding Python objects: refused without advice to load them unsafely."""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from e2e_recon.errors import CheckpointError, ModelFormatError
from e2e_recon.load_errors import describe_load_error
from e2e_recon.nets.comparator import load_alexnet
from e2e_recon.nets.efficientnet_lite import load_state_dict
from e2e_recon.nets.loading import read_network_file
from e2e_recon.train.checkpoint import load_checkpoint


class NotATensor:
    """A class a weights-only load refuses (it would be rebuilt by running code)."""


LOADERS: list[tuple[str, Callable[[Path], Any], type[Exception]]] = [
    ("generator", lambda p: read_network_file(p, "generator"), ModelFormatError),
    ("alexnet", load_alexnet, ModelFormatError),
    ("efficientnet", load_state_dict, ModelFormatError),
    ("checkpoint", load_checkpoint, CheckpointError),
]


@pytest.mark.parametrize(("name", "load", "error"), LOADERS, ids=[row[0] for row in LOADERS])
def test_pickled_objects_refused_without_unsafe_advice(
    tmp_path: Path, name: str, load: Callable[[Path], Any], error: type[Exception]
) -> None:
    path = tmp_path / f"{name}.pt"
    torch.save({"state": collections.OrderedDict(), "payload": NotATensor()}, path)
    with pytest.raises(error) as caught:
        load(path)
    message = str(caught.value)
    assert str(path) in message
    assert "weights_only" not in message
    assert "trusted source" not in message
    assert "NotATensor" in message and "could run code" in message
    assert "\n" not in message


def test_other_errors_keep_their_first_line() -> None:
    assert describe_load_error(KeyError("123")) == "KeyError: '123'"
    assert describe_load_error(RuntimeError("bad zip\nmore")) == "RuntimeError: bad zip"
