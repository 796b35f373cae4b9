"""Fixtures shared by the training tests: one torch thread, a tiny training subject per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tiny_train_subject import make_tiny_subject

from e2e_recon.device import torch_threads


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny networks: one thread is fastest, and immune to other processes on the cores."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def subject(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny training subject (24 images x 2 presentations), made once per module."""
    return make_tiny_subject(tmp_path_factory.mktemp("subject"))
