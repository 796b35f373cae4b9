"""Snapshots that fail: corrupt bytes (checksum), orphaned temporaries, full or read-only
disks, and ``snapshot_every_iters=0``."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch
from tiny_train_subject import tiny_config

from e2e_recon.config import with_overrides
from e2e_recon.errors import CheckpointError, ModelFormatError, OutputError
from e2e_recon.nets.loading import load_generator
from e2e_recon.train import checkpoint as ckpt_io
from e2e_recon.train.loop import train


def _flip_tensor_bytes(path: Path, name: str) -> None:
    """Flip bytes inside one stored tensor, leaving the zip container valid."""
    data = bytearray(path.read_bytes())
    ckpt = torch.load(path, weights_only=True)
    weights = ckpt["generator"][name].numpy().tobytes()
    at = data.find(weights[:64])
    assert at > 0
    for i in range(at, at + 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupt_latest_is_skipped_with_a_warning_and_resume_falls_back(
    subject: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_config(subject, "train.iters=4", "train.snapshot_every_iters=2")
    run = tmp_path / "run"
    train(cfg, run)
    latest = run / "checkpoints" / "latest.pt"
    _flip_tensor_bytes(latest, "defc7.weight")  # also corrupts snapshot_iter4 (a hard link)
    assert torch.load(latest, weights_only=True)["iteration"] == 4  # still loads...
    with pytest.raises(CheckpointError, match="checksum"):  # ...but fails its checksum
        ckpt_io.load_checkpoint(latest)
    capsys.readouterr()
    summary = train(with_overrides(cfg, ["train.iters=5"]), run, resume=True)
    assert summary["start_iteration"] == 2 and summary["iterations"] == 5
    err = capsys.readouterr().err
    assert "warning:" in err and "latest.pt" in err and "checksum" in err


def test_reconstruct_refuses_a_corrupt_snapshot_by_name(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    train(tiny_config(subject, "train.iters=2"), run)
    snapshot = run / "checkpoints" / "snapshot_iter0000002.pt"
    load_generator(snapshot)  # a good one loads
    _flip_tensor_bytes(snapshot, "defc7.weight")
    with pytest.raises(ModelFormatError, match=r"snapshot_iter0000002\.pt: corrupt"):
        load_generator(snapshot)


def test_generator_file_carries_a_checksum(subject: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny_config(subject, "train.iters=2"), run)
    payload = torch.load(run / "generator.pt", weights_only=True)
    assert len(payload["sha256"]) == 64
    payload["state_dict"]["defc7.weight"][0, 0] += 1.0
    torch.save(payload, run / "tampered.pt")
    with pytest.raises(ModelFormatError, match="checksum"):
        load_generator(run / "tampered.pt")


def test_orphaned_temporaries_are_removed_on_start_and_resume(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    cfg = tiny_config(subject, "train.iters=2")
    run = tmp_path / "run"
    folder = run / "checkpoints"
    orphans = [folder / ".snapshot_iter0000010.pt.4242.tmp", folder / ".latest.pt.4242.tmp",
               run / ".generator.pt.77.tmp"]  # fmt: skip
    keep = run / "checkpoints" / "notes.tmp"
    for path in [*orphans, keep]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100)
    train(cfg, run)
    assert not any(p.exists() for p in orphans) and keep.exists()
    orphans[0].write_bytes(b"x")
    train(with_overrides(cfg, ["train.iters=3"]), run, resume=True)
    assert not orphans[0].exists()


def test_disk_full_while_saving_is_one_output_error_and_keeps_the_last_snapshot(
    subject: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config(subject, "train.iters=4", "train.snapshot_every_iters=2")
    run = tmp_path / "run"
    real_save = torch.save
    calls = {"n": 0}

    def save_fails_second_time(obj: object, f: object, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # what torch raises when the disk fills during a write
            raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")
        real_save(obj, f, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch, "save", save_fails_second_time)
    with pytest.raises(OutputError) as info:
        train(cfg, run)
    message = str(info.value)
    assert "\n" not in message and str(run / "checkpoints") in message and "free" in message
    assert ckpt_io.load_checkpoint(run / "checkpoints" / "latest.pt")["iteration"] == 2
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_oserror_writing_stats_is_one_output_error(
    subject: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from e2e_recon.train import stats

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run/stats.jsonl"))

    monkeypatch.setattr(stats.Recorder, "log", no_space)
    with pytest.raises(OutputError, match=r"No space left on device; .* free there"):
        train(tiny_config(subject, "train.iters=2"), tmp_path / "run")


def test_snapshot_every_zero_means_only_the_final_snapshot(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    train(tiny_config(subject, "train.iters=3", "train.snapshot_every_iters=0"), tmp_path / "r")
    names = sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir())
    assert names == ["latest.pt", "snapshot_iter0000003.pt"]
