"""Crops smaller than the discriminator accepts: fine without the adversarial term."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_train_subject import tiny_config

from e2e_recon.config import with_overrides
from e2e_recon.errors import ConfigError
from e2e_recon.train import checkpoint as ckpt_io
from e2e_recon.train.loop import train

SMALL = ("data.image_size_px=32", "data.crop_px=28")


def test_small_crops_train_and_resume_without_the_adversarial_term(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    cfg = tiny_config(subject, *SMALL, "loss.adversarial_weight=0", "train.iters=2")
    run = tmp_path / "run"
    assert train(cfg, run)["stop_reason"] == "done"
    saved = ckpt_io.load_checkpoint(run / "checkpoints" / "latest.pt")
    assert saved["iteration"] == 2
    summary = train(with_overrides(cfg, ["train.iters=3"]), run, resume=True)
    assert summary["stop_reason"] == "done" and summary["iterations"] == 3


def test_small_crops_with_the_adversarial_term_name_the_way_out(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    cfg = tiny_config(subject, *SMALL)
    with pytest.raises(ConfigError, match=r"at least 63 .*loss\.adversarial_weight=0"):
        train(cfg, tmp_path / "run")
