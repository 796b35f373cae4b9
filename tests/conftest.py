"""Shared fixtures: the simulated subject's ``tiny`` preset and a run trained on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from e2e_recon.config import Config, load_config
from e2e_recon.device import torch_threads

TINY_RUN_OVERRIDES = (
    "data.image_size_px=72",  # the tiny preset's 32 px images, upscaled
    "data.crop_px=64",
    "model.fc_width=64",
    "model.output_size_px=64",
    "model.base_channels=16",
    "model.comparator=efficientnet-lite0",
    "model.feature_layers=[stage2]",
    "train.batch_size=8",
    "train.iters=6",
    "train.snapshot_every_iters=3",
    "train.log_every_iters=1",
    "train.grid_every_iters=0",
    "train.device=cpu",
    "train.precision=fp32",
    "recon.batch_size=16",
)


#: The devices a ``gpu``-marked test runs on: the CPU always, CUDA where there is one.
DEVICES = (
    pytest.param("cpu", marks=pytest.mark.gpu),
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"),
        ],
    ),
)


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """Each available device in turn (tests that take it are marked ``gpu``)."""
    return torch.device(request.param)


@pytest.fixture(scope="session", autouse=True)
def _private_data_home(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Point the data home (and so the image cache) at a temporary folder for every test,
    so tests never read or write the user's own data home."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("E2E_RECON_HOME", str(tmp_path_factory.mktemp("data-home")))
        yield


@pytest.fixture(scope="session", autouse=True)
def _no_child_file_check() -> Any:
    """Turn off the child-process check of BData files (``data/h5probe.py``) by default.

    It costs a process start (0.1-0.4 s here) per file, which hundreds of tests with
    fresh files would pay for nothing; ``tests/data/test_h5probe.py`` turns it on.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("E2E_RECON_H5_PROBE_TIMEOUT", "0")
        yield


@pytest.fixture(scope="session")
def tiny_run_overrides() -> tuple[str, ...]:
    """:data:`TINY_RUN_OVERRIDES`, for test modules (which cannot import a conftest)."""
    return TINY_RUN_OVERRIDES


@pytest.fixture(scope="session")
def tiny_subject(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A simulated subject at the ``tiny`` preset (made once per test session)."""
    from e2e_recon.sim.subject import simulate_subject

    return simulate_subject(
        tmp_path_factory.mktemp("tiny") / "subject", preset="tiny", progress=False
    )


def tiny_run_config(subject: dict[str, Any], *extra: str) -> Config:
    """The demo config shrunk to the tiny subject: every test set, a few iterations."""
    files = subject["files"]
    tests = [str(files[k]) for k in ("test", "artificial", "letters")]
    return load_config(
        "demo",
        [
            f"data.train_fmri='{files['training']}'",
            "data.test_fmri=[" + ", ".join(f"'{t}'" for t in tests) + "]",
            f"data.images_dir='{subject['images_dir']}'",
            *TINY_RUN_OVERRIDES,
            *extra,
        ],
    )


@pytest.fixture(scope="session")
def tiny_run(tiny_subject: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory trained for a few iterations on the tiny subject."""
    from e2e_recon.runs import init_run_dir
    from e2e_recon.train.loop import train

    cfg = tiny_run_config(tiny_subject)
    run_dir = init_run_dir(tmp_path_factory.mktemp("runs") / "00000-sub-01-tiny", cfg)
    with torch_threads(1):
        train(cfg, run_dir)
    return run_dir
