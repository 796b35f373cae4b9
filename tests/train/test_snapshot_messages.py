"""Messages about damaged snapshots: what happened, and only advice not yet followed."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from e2e_recon.errors import CheckpointError
from e2e_recon.train import checkpoint as ckpt_io


def _snapshot(folder: Path, iteration: int) -> Path:
    path = folder / ckpt_io.snapshot_name(iteration)
    payload = {"format": ckpt_io.CHECKPOINT_FORMAT, "version": ckpt_io.FORMAT_VERSION}
    ckpt_io.atomic_torch_save({**payload, "iteration": iteration}, path)
    return path


def _random_head(path: Path, n_bytes: int = 64) -> None:
    data = bytearray(path.read_bytes())
    data[:n_bytes] = random.Random(0).randbytes(n_bytes)
    path.write_bytes(bytes(data))


def test_random_bytes_at_the_head_read_as_a_damaged_file(tmp_path: Path) -> None:
    """Before: reported as a file whose Python objects 'could run code'."""
    path = _snapshot(tmp_path, 2)
    _random_head(path)
    with pytest.raises(CheckpointError) as caught:
        ckpt_io.load_checkpoint(path)
    message = str(caught.value)
    assert "damaged or not a PyTorch file" in message
    assert "run code" not in message and "Python objects" not in message
    assert message.endswith("use an earlier snapshot from the same folder")


def test_the_fallback_does_not_advise_what_it_does_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: 'use an earlier snapshot ...' followed by '(skipped: falling back ...)'."""
    folder = tmp_path / "checkpoints"
    good = _snapshot(folder, 2)
    _random_head(_snapshot(folder, 4))
    assert ckpt_io.find_resume_checkpoint(tmp_path) == good
    err = capsys.readouterr().err
    assert "snapshot_iter0000004.pt" in err and "damaged" in err
    assert "use an earlier snapshot" not in err
    assert "the previous snapshot is tried instead" in err
