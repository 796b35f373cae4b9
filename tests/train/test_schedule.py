"""Per-network learning-rate schedules: each counts its own network's updates (Caffe solvers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_train_subject import tiny_config

from e2e_recon.config import with_overrides
from e2e_recon.errors import CheckpointError
from e2e_recon.train import checkpoint as ckpt_io
from e2e_recon.train.loop import train
from e2e_recon.train.schedule import SolverSchedule
from e2e_recon.train.stats import read_stats

# Balance thresholds that stop D after its first update and never resume it (r < 1e9 always).
PAUSE_D = ("train.balance_stop_d_below=1e9", "train.balance_resume_d_above=1e9",
           "train.balance_stop_g_above=1e9")  # fmt: skip
# ... and that stop G after its first update (r > 0 always) while D keeps training.
PAUSE_G = ("train.balance_stop_d_below=0", "train.balance_stop_g_above=0")


def _optimizer(*lrs: float) -> torch.optim.Optimizer:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.Adam(groups)


def test_rate_halves_after_the_milestone_counts_of_updates() -> None:
    opt = _optimizer(2e-4, 1e-3)
    schedule = SolverSchedule(opt, [3, 1], gamma=0.5)
    seen = []
    for _ in range(4):
        seen.append([g["lr"] for g in opt.param_groups])
        schedule.step()
    # Caffe "multistep": the update after n updates uses base x gamma^(milestones <= n).
    assert seen == [[2e-4, 1e-3], [1e-4, 5e-4], [1e-4, 5e-4], [5e-5, 2.5e-4]]
    assert schedule.updates == 4 and schedule.lr() == pytest.approx(5e-5)


def test_state_round_trip_and_older_multisteplr_state() -> None:
    schedule = SolverSchedule(_optimizer(2e-4), [2])
    for _ in range(3):
        schedule.step()
    fresh = SolverSchedule(_optimizer(2e-4), [2])
    fresh.load_state_dict(schedule.state_dict())
    assert fresh.updates == 3 and fresh.lr() == pytest.approx(1e-4)
    legacy = torch.optim.lr_scheduler.MultiStepLR(_optimizer(2e-4), [2], gamma=0.5)
    older = SolverSchedule(_optimizer(2e-4), [2])
    older.load_state_dict({**legacy.state_dict(), "last_epoch": 2})
    assert older.updates == 2 and older.lr() == pytest.approx(1e-4)
    with pytest.raises(CheckpointError, match="update counter"):
        older.load_state_dict({"milestones": [2]})


@pytest.mark.parametrize(
    ("pause", "updates_g", "updates_d", "lr_g", "lr_d"),
    [
        # D stepped once: its rate stays 2e-4 while G's halves after G's 2nd update.
        (PAUSE_D, 4, 1, [2e-4, 2e-4, 1e-4, 1e-4], [2e-4] * 4),
        # G stepped once: its rate stays 2e-4 while D's halves after D's 2nd update.
        (PAUSE_G, 1, 4, [2e-4] * 4, [2e-4, 2e-4, 1e-4, 1e-4]),
    ],
)
def test_a_paused_network_keeps_its_rate(
    subject: dict[str, Path],
    tmp_path: Path,
    pause: tuple[str, ...],
    updates_g: int,
    updates_d: int,
    lr_g: list[float],
    lr_d: list[float],
) -> None:
    cfg = tiny_config(subject, "train.lr_halve_at_iters=[2]", *pause)
    train(cfg, tmp_path / "run")
    rows = read_stats(tmp_path / "run" / "stats.jsonl")
    assert [r["train_g"] for r in rows].count(True) == updates_g
    assert [r["train_d"] for r in rows].count(True) == updates_d
    assert [r["lr_g"] for r in rows] == pytest.approx(lr_g)
    assert [r["lr_d"] for r in rows] == pytest.approx(lr_d)
    ckpt = ckpt_io.load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert ckpt["schedule_g"]["updates"] == updates_g
    assert ckpt["schedule_d"]["updates"] == updates_d


def test_resume_restores_both_update_counters_exactly(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    cfg = tiny_config(subject, "train.iters=5", "train.lr_halve_at_iters=[2]", *PAUSE_D)
    train(cfg, tmp_path / "straight")
    train(with_overrides(cfg, ["train.iters=3"]), tmp_path / "split")
    train(cfg, tmp_path / "split", resume=True)
    straight = read_stats(tmp_path / "straight" / "stats.jsonl")
    split = read_stats(tmp_path / "split" / "stats.jsonl")
    keys = ("lr_g", "lr_d", "train_g", "train_d", "loss_g", "loss_d")
    assert [[r[k] for k in keys] for r in split] == [[r[k] for k in keys] for r in straight]
    a, b = (ckpt_io.load_checkpoint(tmp_path / n / "checkpoints" / "latest.pt")
            for n in ("straight", "split"))  # fmt: skip
    assert a["schedule_d"] == b["schedule_d"] and a["schedule_d"]["updates"] == 1
    assert a["schedule_g"] == b["schedule_g"] and a["schedule_g"]["updates"] == 5


def test_snapshot_from_before_per_network_counters_still_resumes(
    subject: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tiny_config(subject, "train.iters=2", "train.snapshot_every_iters=2")
    run = tmp_path / "run"
    train(cfg, run)
    latest = run / "checkpoints" / "latest.pt"
    ckpt = ckpt_io.load_checkpoint(latest)
    for key in ("schedule_g", "schedule_d"):  # MultiStepLR's state, stepped every iteration
        ckpt[key] = {"milestones": {3: 1}, "last_epoch": 2, "gamma": 0.5, "base_lrs": [2e-4]}
    (run / "checkpoints" / "snapshot_iter0000002.pt").unlink()
    latest.unlink()
    ckpt_io.write_snapshot(run / "checkpoints", ckpt)
    summary = train(with_overrides(cfg, ["train.iters=4"]), run, resume=True)
    assert summary["iterations"] == 4
    assert "predates per-network learning-rate schedules" in caplog.text
    resumed = ckpt_io.load_checkpoint(latest)
    assert resumed["schedule_g"]["updates"] == 4  # 2 counted before, 2 after
