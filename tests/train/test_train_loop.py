"""train() on tiny data: outputs, exact resume, non-finite losses, unsupported settings, the
moving average of the generator weights."""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
from tiny_train_subject import tiny_config

from e2e_recon.config import with_overrides
from e2e_recon.errors import ConfigError, TrainingError
from e2e_recon.nets.loading import load_generator
from e2e_recon.train import checkpoint as ckpt_io
from e2e_recon.train import losses
from e2e_recon.train.loop import train
from e2e_recon.train.stats import read_stats


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = ckpt_io.load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    return {**{f"G.{k}": v for k, v in ckpt["generator"].items()},
            **{f"D.{k}": v for k, v in ckpt["discriminator"].items()}}  # fmt: skip


def test_run_writes_snapshots_stats_grid_and_generator(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    cfg = tiny_config(subject, f"data.test_fmri=['{subject['test']}']", "train.grid_every_iters=2")
    summary = train(cfg, tmp_path / "run")
    run = tmp_path / "run"
    assert summary["iterations"] == 4 and not summary["interrupted"]
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["latest.pt", "snapshot_iter0000002.pt", "snapshot_iter0000004.pt"]
    rows = read_stats(run / "stats.jsonl")
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss_g"]) and "ratio" in r for r in rows)
    assert rows[-1]["lr_g"] == pytest.approx(1e-4)  # halved at iteration 3
    assert (run / "report" / "train_grid_iter0000004.png").is_file()
    ckpt = ckpt_io.load_checkpoint(run / "checkpoints" / "latest.pt")
    assert ckpt["iteration"] == 4 and set(ckpt["balance"]) == {"train_d", "train_g"}
    for name, value in ckpt["generator"].items():  # transposed-conv biases stay at zero
        if name.startswith(("deconv", "conv")) and name.endswith("bias"):
            assert torch.count_nonzero(value) == 0, name
    generator = load_generator(run / "generator.pt")
    payload = torch.load(run / "generator.pt", weights_only=True)
    assert payload["norm"]["mean"].shape == (generator.n_voxels,)
    assert torch.equal(generator.state_dict()["defc7.weight"], ckpt["generator"]["defc7.weight"])


def test_interrupted_and_resumed_equals_uninterrupted(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    cfg = tiny_config(subject, "train.iters=5", "train.snapshot_every_iters=2")
    train(cfg, tmp_path / "straight")
    train(with_overrides(cfg, ["train.iters=3"]), tmp_path / "split")
    summary = train(cfg, tmp_path / "split", resume=True)
    assert summary["start_iteration"] == 3 and summary["iterations"] == 5
    straight, split = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert straight.keys() == split.keys()
    for name in straight:
        assert torch.equal(straight[name], split[name]), name
    rows = read_stats(tmp_path / "split" / "stats.jsonl")
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5]


def test_non_finite_loss_saves_last_finite_state_and_names_it(
    subject: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real_image_loss = losses.image_loss

    def image_loss_nan_from_third_call(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        out = real_image_loss(fake, real)
        return out * float("nan") if calls["n"] >= 3 else out

    monkeypatch.setattr(losses, "image_loss", image_loss_nan_from_third_call)
    cfg = tiny_config(subject, "train.snapshot_every_iters=100", "train.iters=10")
    with pytest.raises(TrainingError, match=r"became nan at iteration 3 "):
        train(cfg, tmp_path / "run")
    ckpt = ckpt_io.load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert ckpt["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["generator"].values())


def test_invalid_setting_is_refused_by_name(subject: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.presentation_average_k"):
        train(tiny_config(subject, "train.presentation_average_k=0"), tmp_path / "run")


def test_resume_without_checkpoint_is_a_clear_error(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    from e2e_recon.errors import CheckpointError

    with pytest.raises(CheckpointError, match="no loadable checkpoint"):
        train(tiny_config(subject), tmp_path / "empty", resume=True)


def test_ctrl_c_writes_a_snapshot_and_returns(subject: dict[str, Path], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = tiny_config(subject, "train.iters=100000", "train.snapshot_every_iters=1000")
    stats = run_dir / "stats.jsonl"

    def press_ctrl_c_after_first_row() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if stats.is_file() and stats.stat().st_size > 0:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.02)

    presser = threading.Thread(target=press_ctrl_c_after_first_row)
    presser.start()
    summary = train(cfg, run_dir)
    presser.join()
    assert summary["interrupted"] and 0 < summary["iterations"] < 100000
    ckpt = ckpt_io.load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert ckpt["iteration"] == summary["iterations"]
    assert (run_dir / "generator.pt").is_file()


@pytest.mark.parametrize("decay", [1.0, -0.1])
def test_ema_decay_outside_zero_one_is_refused(
    subject: dict[str, Path], tmp_path: Path, decay
) -> None:
    with pytest.raises(ConfigError, match=r"train\.ema_decay"):
        train(tiny_config(subject, f"train.ema_decay={decay}"), tmp_path / "run")


def test_with_ema_exported_generator_is_the_average_and_resume_is_exact(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    cfg = tiny_config(
        subject, "train.iters=5", "train.ema_decay=0.5", "data.val_images=2",
        "train.val_every_iters=5",
    )  # fmt: skip
    train(cfg, tmp_path / "straight")
    train(with_overrides(cfg, ["train.iters=3"]), tmp_path / "split")
    train(cfg, tmp_path / "split", resume=True)
    latest = [ckpt_io.load_checkpoint(tmp_path / r / "checkpoints" / "latest.pt")
              for r in ("straight", "split")]  # fmt: skip
    (straight, split) = [c["generator_ema"] for c in latest]
    assert straight["updates"] == split["updates"] == 5
    for name, value in straight["weights"].items():
        assert torch.equal(value, split["weights"][name]), name
    trained, averaged = latest[0]["generator"], straight["weights"]
    assert not torch.equal(trained["defc7.weight"], averaged["defc7.weight"])
    exported = load_generator(tmp_path / "straight" / "generator.pt").state_dict()
    assert torch.equal(exported["defc7.weight"], averaged["defc7.weight"])
    meta = torch.load(tmp_path / "straight" / "generator.pt", weights_only=True)["meta"]
    assert meta["weights"] == "moving average"
    best = load_generator(tmp_path / "straight" / "best.pt").state_dict()  # validated at 5
    assert torch.equal(best["defc7.weight"], averaged["defc7.weight"])


def test_ema_added_on_resume_starts_from_the_resumed_weights(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    cfg = tiny_config(subject, "train.iters=2")
    train(cfg, tmp_path / "run")
    longer = with_overrides(cfg, ["train.iters=3", "train.ema_decay=0.9"])
    train(longer, tmp_path / "run", resume=True)
    ckpt = ckpt_io.load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert ckpt["generator_ema"]["updates"] == 1


def test_fp32_trains_with_tf32_off_and_restores_the_flags(
    subject: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from e2e_recon.train import loop

    flags = torch.backends.cuda.matmul, torch.backends.cudnn
    seen: list[tuple[bool, bool]] = []
    original = loop._run_loop

    def recording(run: loop.RunState) -> dict[str, object]:
        seen.append((flags[0].allow_tf32, flags[1].allow_tf32))
        return original(run)

    monkeypatch.setattr(loop, "_run_loop", recording)
    before = (flags[0].allow_tf32, flags[1].allow_tf32)
    train(tiny_config(subject, "train.iters=1"), tmp_path / "strict")  # precision fp32
    train(tiny_config(subject, "train.iters=1", "train.precision=bf16"), tmp_path / "fast")
    assert seen == [(False, False), (True, True)]
    assert (flags[0].allow_tf32, flags[1].allow_tf32) == before
