"""``data.sampling: epoch``: one fixed shuffled order per run, read in order, wrapped, resumed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_train_subject import tiny_config

from e2e_recon.config import load_config, with_overrides
from e2e_recon.errors import CheckpointError, ConfigError
from e2e_recon.train import checkpoint as ckpt_io
from e2e_recon.train.loop import train
from e2e_recon.train.sampling import EpochOrder


def test_every_sample_once_per_epoch_then_the_same_order_again() -> None:
    order = EpochOrder(10, seed=3)
    first = torch.cat([order.next_rows(4) for _ in range(5)])  # 20 rows: two epochs
    assert sorted(first[:10].tolist()) == list(range(10))
    assert torch.equal(first[:10], first[10:])  # wrapped, in the same order
    assert not torch.equal(first[:10], torch.arange(10))  # shuffled
    assert torch.equal(EpochOrder(10, seed=3).order, order.order)  # fixed by the seed
    assert not torch.equal(EpochOrder(10, seed=4).order, order.order)
    assert order.position == 0


def test_ranks_read_consecutive_shares_of_the_global_batch() -> None:
    one = EpochOrder(10, seed=0)
    ranks = [EpochOrder(10, seed=0) for _ in range(2)]
    for _ in range(4):
        whole = one.next_rows(6)
        shares = [ranks[r].next_rows(3, rank=r, world_size=2) for r in range(2)]
        assert torch.equal(torch.cat(shares), whole)


def test_state_round_trip_and_mismatched_training_set() -> None:
    order = EpochOrder(10, seed=0)
    order.next_rows(7)
    again = EpochOrder(10, seed=0)
    again.load_state_dict(order.state_dict())
    assert torch.equal(again.next_rows(5), order.next_rows(5))
    with pytest.raises(CheckpointError, match=r"same data\.train_fmri"):
        EpochOrder(12, seed=0).load_state_dict(order.state_dict())


def test_presets_choose_their_sampling() -> None:
    assert load_config("paper").data.sampling == "epoch"
    assert load_config("demo").data.sampling == "random"
    assert load_config("small").data.sampling == "random"


def test_unknown_sampling_is_refused_by_name(subject: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.sampling='shuffle'"):
        train(tiny_config(subject, "data.sampling=shuffle"), tmp_path / "run")


def test_training_reads_the_order_and_resumes_it_exactly(
    subject: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[torch.Tensor] = []
    original = EpochOrder.next_rows

    def recording(self: EpochOrder, *args: int, **kwargs: int) -> torch.Tensor:
        rows = original(self, *args, **kwargs)
        read.append(rows)
        return rows

    monkeypatch.setattr(EpochOrder, "next_rows", recording)
    # 48 samples, batch 8: an epoch is 6 iterations; 8 iterations wrap into the second.
    cfg = tiny_config(
        subject, "data.sampling=epoch", "train.iters=8", "train.snapshot_every_iters=4"
    )
    train(cfg, tmp_path / "straight")
    rows = torch.cat(read)  # (64,)
    assert sorted(rows[:48].tolist()) == list(range(48))
    assert torch.equal(rows[48:], rows[:16])
    read.clear()
    train(with_overrides(cfg, ["train.iters=5"]), tmp_path / "split")
    train(cfg, tmp_path / "split", resume=True)
    assert torch.equal(torch.cat(read), rows)
    a, b = (ckpt_io.load_checkpoint(tmp_path / name / "checkpoints" / "latest.pt")
            for name in ("straight", "split"))  # fmt: skip
    assert a["data_order"] == b["data_order"] == {"position": 16, "n_samples": 48}
    for name in a["generator"]:
        assert torch.equal(a["generator"][name], b["generator"][name]), name


def test_random_sampling_writes_no_order(subject: dict[str, Path], tmp_path: Path) -> None:
    train(tiny_config(subject, "data.sampling=random", "train.iters=2"), tmp_path / "run")
    ckpt = ckpt_io.load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert "data_order" not in ckpt


def test_snapshot_without_an_order_continues_from_its_iteration(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    cfg = tiny_config(subject, "data.sampling=random", "train.iters=3")
    train(cfg, tmp_path / "run")
    train(
        with_overrides(cfg, ["data.sampling=epoch", "train.iters=5"]), tmp_path / "run", resume=True
    )
    ckpt = ckpt_io.load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert ckpt["data_order"]["position"] == 5 * 8  # as if read in order from the start
