"""Why a run stopped, in its summary, and the exit code of ``e2e-recon train`` after a signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_train_subject import tiny_config

from e2e_recon.config import save_config
from e2e_recon.train.loop import train


def test_done_and_time_limit_are_told_apart(subject: dict[str, Path], tmp_path: Path) -> None:
    done = train(tiny_config(subject, "train.iters=2"), tmp_path / "a")
    assert done["stop_reason"] == "done" and not done["interrupted"]
    limited = train(
        tiny_config(subject, "train.iters=1000", "train.max_minutes=1e-9"), tmp_path / "b"
    )
    assert limited["stop_reason"] == "time_limit" and limited["interrupted"]
    assert limited["stop_signal"] == 0


def test_early_stop_is_its_own_reason(subject: dict[str, Path], tmp_path: Path) -> None:
    cfg = tiny_config(
        subject, "data.val_images=4", "train.val_every_iters=2", "train.iters=40", "train.lr=0",
        "train.best_metric=image_loss", "train.early_stop_patience=1",
    )  # fmt: skip
    summary = train(cfg, tmp_path / "run")
    assert summary["stop_reason"] == "early_stop" and summary["early_stopped"]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_train_stopped_by_a_signal_snapshots_and_exits_128_plus_signal(
    subject: dict[str, Path], tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    config = tmp_path / "config.yaml"
    save_config(tiny_config(subject, "train.iters=100000", "train.snapshot_every_iters=0"), config)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "e2e_recon.cli", "train", "--config", str(config),
           "--run-dir", str(run)]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    stats, deadline = run / "stats.jsonl", time.monotonic() + 120
    while time.monotonic() < deadline and not (stats.is_file() and stats.stat().st_size):
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    summary = json.loads(out)
    assert summary["stop_reason"] == "signal" and summary["stop_signal"] == sig
    assert (run / "checkpoints" / "latest.pt").is_file() and (run / "generator.pt").is_file()
    assert "--resume" in err
