"""Shared and adapted runs under two-rank DDP (gloo): every rank ends with the same weights,
and an adapted run's frozen layers stay the source's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_multi_subject import adapt_config, derive_subject, make_multi_subject, shared_config

from e2e_recon.config import Config, save_config
from e2e_recon.nets.shared import shared_layers
from e2e_recon.train import checkpoint as ckpt_io

RUNNER = Path(__file__).with_name("run_training.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
pytestmark = pytest.mark.slow


def _two_ranks(cfg: Config, folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Train with torchrun on 2 CPU processes; return each rank's final generator weights."""
    folder.mkdir(parents=True, exist_ok=True)
    save_config(cfg, folder / "train.yaml")
    out = folder / "weights"
    out.mkdir()
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        str(RUNNER), str(folder / "train.yaml"), str(folder / "run"), "--dump-weights", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return {
        rank: torch.load(out / f"{rank}.pt", weights_only=True)["generator"]
        for rank in ("rank0", "rank1")
    }


def test_shared_and_adapted_runs_under_ddp(tmp_path: Path) -> None:
    paths = make_multi_subject(tmp_path / "data")
    weights = _two_ranks(shared_config(paths, "train.iters=4"), tmp_path / "shared")
    for name, value in weights["rank0"].items():
        assert torch.equal(value, weights["rank1"][name]), name
    source = tmp_path / "shared" / "run"
    assert ckpt_io.load_checkpoint(source / "checkpoints" / "latest.pt")["iteration"] == 4
    new = derive_subject(Path(paths["train"][0]), "sub-04", 44, seed=7, noise=0.3)  # type: ignore[index]
    cfg = adapt_config(new, paths["images"], source, "train.iters=4",  # type: ignore[arg-type]
                       "train.adapt_finetune_lr_scale=0")  # fmt: skip
    weights = _two_ranks(cfg, tmp_path / "adapt")
    kept = shared_layers(torch.load(source / "best.pt", weights_only=True)["state_dict"])
    for name, value in weights["rank0"].items():
        assert torch.equal(value, weights["rank1"][name]), name
        if name in kept:
            assert torch.equal(value, kept[name]), name
    assert not torch.equal(weights["rank0"]["defc7.weight"], torch.zeros_like(
        weights["rank0"]["defc7.weight"]))  # fmt: skip
