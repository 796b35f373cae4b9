"""train.adversarial_every_iters: the discriminator runs every k-th iteration only, with its
term in the generator's loss weighted x k; resume stays exact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_train_subject import tiny_config

from e2e_recon.config import with_overrides
from e2e_recon.errors import ConfigError
from e2e_recon.nets.discriminator import Discriminator
from e2e_recon.train import checkpoint as ckpt_io
from e2e_recon.train.loop import train
from e2e_recon.train.losses import LossWeights, adversarial_due, with_adversarial_every
from e2e_recon.train.stats import read_stats


def test_due_every_kth_iteration_from_the_first() -> None:
    assert [adversarial_due(i, 3) for i in range(7)] == [
        True, False, False, True, False, False, True,
    ]  # fmt: skip
    assert all(adversarial_due(i, 1) for i in range(5))


def test_the_adversarial_weight_is_multiplied_by_k_only() -> None:
    base = LossWeights(image=2.0, feature=0.5, adversarial=0.003)
    assert with_adversarial_every(base, 1) is base
    assert with_adversarial_every(base, 4) == LossWeights(2.0, 0.5, pytest.approx(0.012))


def test_discriminator_runs_only_in_due_iterations(
    subject: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    forward = Discriminator.forward

    def counted(self: Discriminator, x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return forward(self, x)

    monkeypatch.setattr(Discriminator, "forward", counted)
    cfg = tiny_config(subject, "train.iters=6", "train.adversarial_every_iters=3")
    train(cfg, tmp_path / "run")
    # Iterations 0 and 3: the D step on real + fake (16) and the G step on fake (8).
    assert calls == [16, 8, 16, 8]
    rows = read_stats(tmp_path / "run" / "stats.jsonl")
    assert [r["train_d"] for r in rows][1:3] == [False, False]
    assert [r["train_d"] for r in rows][4:6] == [False, False]
    # Iterations without the term log the last adversarial losses measured.
    assert rows[1]["d_real"] == rows[2]["d_real"] == rows[0]["d_real"]
    ckpt = ckpt_io.load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    d_steps = {int(s["step"]) for s in ckpt["optimizer_d"]["state"].values()}
    assert d_steps == {sum(r["train_d"] for r in rows)}
    g_steps = {int(s["step"]) for s in ckpt["optimizer_g"]["state"].values()}
    assert g_steps == {6}


def test_resume_between_due_iterations_is_exact(subject: dict[str, Path], tmp_path: Path) -> None:
    cfg = tiny_config(subject, "train.iters=5", "train.adversarial_every_iters=2")
    train(cfg, tmp_path / "straight")
    train(with_overrides(cfg, ["train.iters=3"]), tmp_path / "split")
    train(cfg, tmp_path / "split", resume=True)
    straight, split = (
        ckpt_io.load_checkpoint(tmp_path / run / "checkpoints" / "latest.pt")
        for run in ("straight", "split")
    )
    for net in ("generator", "discriminator"):
        for name, value in straight[net].items():
            assert torch.equal(value, split[net][name]), f"{net}.{name}"


def test_zero_is_refused_by_name(subject: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.adversarial_every_iters=0"):
        train(tiny_config(subject, "train.adversarial_every_iters=0"), tmp_path / "run")
