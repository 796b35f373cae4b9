from __future__ import annotations

from pathlib import Path

import pytest

from e2e_recon.config import load_config
from e2e_recon.errors import CheckpointError
from e2e_recon.runs import init_run_dir, next_run_dir, require_run_dir


def test_run_dirs_are_numbered(tmp_path: Path) -> None:
    first = next_run_dir(tmp_path, "sub-01", "demo")
    second = next_run_dir(tmp_path, "sub-01", "my run/x")
    assert first.name == "00000-sub-01-demo"
    assert second.name == "00001-sub-01-my-run-x"


def test_init_writes_config_and_layout(tmp_path: Path) -> None:
    cfg = load_config("demo")
    run = init_run_dir(tmp_path / "r", cfg)
    assert (run / "config.yaml").is_file()
    assert all((run / sub).is_dir() for sub in ("checkpoints", "recon", "report"))
    assert load_config(run / "config.yaml") == cfg
    assert require_run_dir(run) == run
    with pytest.raises(CheckpointError, match="not a run directory"):
        require_run_dir(tmp_path)
