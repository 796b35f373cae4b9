"""Training in other processes: two-rank DDP with gloo, SIGKILL and Ctrl-C safety."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_train_subject import tiny_config

from e2e_recon.config import Config, save_config, with_overrides
from e2e_recon.train import checkpoint as ckpt_io
from e2e_recon.train.loop import train

RUNNER = Path(__file__).with_name("run_training.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _config_file(cfg: Config, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train.yaml"
    save_config(cfg, path)
    return path


def _wait_for(path: Path, process: subprocess.Popen[str], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"training exited early: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear within {timeout_s} s")
        time.sleep(0.05)


@pytest.mark.slow
def test_two_rank_gloo_ddp_ends_with_identical_weights(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    cfg = tiny_config(subject, "train.iters=4", "train.snapshot_every_iters=2")
    config = _config_file(cfg, tmp_path)
    out = tmp_path / "weights"
    out.mkdir()
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        str(RUNNER), str(config), str(tmp_path / "run"), "--dump-weights", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [json.loads(line[8:]) for line in done.stdout.splitlines() if "SUMMARY " in line]
    assert len(summaries) == 2 and {s["world_size"] for s in summaries} == {2}
    rank0 = torch.load(out / "rank0.pt", weights_only=True)
    rank1 = torch.load(out / "rank1.pt", weights_only=True)
    for net in ("generator", "discriminator"):
        for name, value in rank0[net].items():
            assert torch.equal(value, rank1[net][name]), f"{net}.{name} differs between ranks"
    ckpt = ckpt_io.load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert ckpt["iteration"] == 4 and len(ckpt["rng"]) == 2  # each rank's random streams
    initial = tiny_config(subject, "train.iters=1")
    assert not torch.equal(rank0["generator"]["defc7.weight"], _initial_defc7(initial, tmp_path))


def _initial_defc7(cfg: Config, tmp_path: Path) -> torch.Tensor:
    """defc7 weights at initialisation (a check that the DDP run trained at all)."""
    from e2e_recon.nets.generator import Generator

    g = Generator(48, cfg.model.fc_width, cfg.model.output_size_px, cfg.model.base_channels)
    g.reset_parameters(torch.Generator().manual_seed(cfg.train.seed))
    return g.defc7.weight.detach()


@pytest.mark.slow
def test_sigkill_at_a_random_moment_leaves_a_loadable_snapshot(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    cfg = tiny_config(subject, "train.iters=100000", "train.snapshot_every_iters=1")
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, str(RUNNER), str(_config_file(cfg, tmp_path)), str(run_dir)],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for(run_dir / "checkpoints" / "latest.pt", process)
    delay = random.uniform(0.0, 0.5)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    path = ckpt_io.find_resume_checkpoint(run_dir)
    ckpt = ckpt_io.load_checkpoint(path)
    assert ckpt["iteration"] >= 1, f"killed after {delay:.3f} s"
    for snapshot in (run_dir / "checkpoints").glob("snapshot_iter*.pt"):
        ckpt_io.load_checkpoint(snapshot)  # every finished name is complete
    stop_at = int(ckpt["iteration"]) + 2
    summary = train(with_overrides(cfg, [f"train.iters={stop_at}"]), run_dir, resume=True)
    assert summary["iterations"] == stop_at
