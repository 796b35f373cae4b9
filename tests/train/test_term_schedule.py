"""train.adversarial_every_iters and train.feature_every_iters: the discriminator or the
comparator runs every k-th iteration only, its term weighted x k; resume stays exact."""

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
from e2e_recon.train.losses import LossWeights
from e2e_recon.train.stats import read_stats
from e2e_recon.train.term_schedule import LastMeasured, TermSchedule


def _adam_steps(run_dir: Path, optimiser: str) -> set[int]:
    """The step counts in the latest snapshot's ``optimizer_g`` or ``optimizer_d`` state."""
    ckpt = ckpt_io.load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    return {int(state["step"]) for state in ckpt[optimiser]["state"].values()}


def test_due_every_kth_iteration_from_the_first() -> None:
    schedule = TermSchedule(adversarial_every=3, feature_every=2)
    assert [schedule.adversarial_due(i) for i in range(7)] == [
        True, False, False, True, False, False, True,
    ]  # fmt: skip
    assert [schedule.feature_due(i) for i in range(4)] == [True, False, True, False]
    assert all(
        TermSchedule().adversarial_due(i) and TermSchedule().feature_due(i) for i in range(5)
    )


def test_a_due_term_is_weighted_k_times_and_one_not_due_is_off() -> None:
    base = LossWeights(image=2.0, feature=0.5, adversarial=0.003)
    assert TermSchedule().weights(base, 7) is base
    schedule = TermSchedule(adversarial_every=4, feature_every=2)
    assert schedule.weights(base, 0) == LossWeights(2.0, 1.0, pytest.approx(0.012))
    assert schedule.weights(base, 2) == LossWeights(2.0, 1.0, 0.0)
    assert schedule.weights(base, 3) == LossWeights(2.0, 0.0, 0.0)
    # Over k iterations each term's weights add up to k x the configured one.
    total = [schedule.weights(base, i) for i in range(4)]
    assert sum(w.feature for w in total) == pytest.approx(4 * base.feature)
    assert sum(w.adversarial for w in total) == pytest.approx(4 * base.adversarial)


def test_left_out_terms_are_logged_with_their_last_measured_values() -> None:
    measured = LastMeasured()
    row = {"image": 1.0, "feature": 2.0, "adversarial": 3.0, "d_real": 4.0, "d_fake": 5.0}
    first = measured.fill(row | {"loss_d": 9.0}, adversarial=True, feature=True)
    assert first["feature"] == 2.0 and first["loss_d"] == 9.0
    zeros = {"image": 7.0, "feature": 0.0, "adversarial": 0.0, "d_real": 0.0, "d_fake": 0.0}
    later = measured.fill(zeros | {"loss_d": 0.0}, adversarial=False, feature=False)
    assert later == {**first, "image": 7.0}


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
    assert _adam_steps(tmp_path / "run", "optimizer_d") == {sum(r["train_d"] for r in rows)}
    assert _adam_steps(tmp_path / "run", "optimizer_g") == {6}


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


def test_comparator_runs_only_in_due_iterations(
    subject: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from e2e_recon.train import step

    calls: list[int] = []
    feature_loss = step.losses.feature_loss

    def counted(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        return feature_loss(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(step.losses, "feature_loss", counted)
    cfg = tiny_config(subject, "train.iters=5", "train.feature_every_iters=2")
    train(cfg, tmp_path / "run")
    assert len(calls) == 3  # iterations 0, 2 and 4
    rows = read_stats(tmp_path / "run" / "stats.jsonl")
    assert rows[1]["feature"] == rows[0]["feature"] > 0  # iteration 1 logs iteration 0's


def test_without_the_image_loss_an_iteration_with_no_term_due_leaves_g_alone(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    cfg = tiny_config(
        subject, "train.iters=4", "loss.image_weight=0", "train.adversarial_every_iters=2",
        "train.feature_every_iters=2",
    )  # fmt: skip
    train(cfg, tmp_path / "run")  # iterations 1 and 3 have no term: no backward, no step
    assert _adam_steps(tmp_path / "run", "optimizer_g") == {2}
    rows = read_stats(tmp_path / "run" / "stats.jsonl")
    assert [r["train_g"] for r in rows] == [True, False, True, False]


@pytest.mark.parametrize("key", ["adversarial_every_iters", "feature_every_iters"])
def test_zero_is_refused_by_name(subject: dict[str, Path], tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"train\.{key}=0"):
        train(tiny_config(subject, f"train.{key}=0"), tmp_path / "run")
