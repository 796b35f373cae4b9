"""Shared fixtures of the Caffe tests: the real-Caffe reference files and a comparison."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def caffe_fixture_dir() -> Path | None:
    """Folder of the real-Caffe reference outputs, or None when this checkout has none."""
    env = os.environ.get("E2E_CAFFE_FIXTURES")
    folder = Path(env) if env else REPO_ROOT.parent / "shared" / "fixtures" / "caffe"
    return folder if (folder / "meta.json").is_file() else None


@pytest.fixture(scope="session")
def caffe_fixtures() -> Path:
    """Path of the fixtures; skips the test when they are absent."""
    folder = caffe_fixture_dir()
    if folder is None:
        pytest.skip(
            "Caffe reference fixtures not found: set E2E_CAFFE_FIXTURES or provide "
            "../shared/fixtures/caffe next to the repository"
        )
    return folder


@pytest.fixture(scope="session")
def assert_matches_caffe() -> Callable[[np.ndarray, np.ndarray, str], None]:
    """Assert ``ours`` equals Caffe's array within 1e-5 of its largest magnitude."""

    def check(ours: np.ndarray, theirs: np.ndarray, name: str) -> None:
        assert ours.shape == theirs.shape, f"{name}: shape {ours.shape} != {theirs.shape}"
        scale = float(np.abs(theirs).max())
        error = float(np.abs(ours.astype(np.float64) - theirs).max())
        assert error <= 1e-5 * scale, f"{name}: max error {error:.3g} > 1e-5 x {scale:.3g}"

    return check
