"""``train.precision: auto`` on a CPU with native bf16: the run's own step is timed.

The measurement runs copies of the networks under a forked random stream, so a run
that measures and decides fp32 trains exactly as a run configured fp32.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_train_subject import tiny_config

from e2e_recon import device as dev
from e2e_recon.train import loop
from e2e_recon.train.distributed import DistInfo
from e2e_recon.train.precision_probe import choose_run_precision, step_signature
from e2e_recon.train.step import build_nets

ITERS = ("train.iters=3", "train.snapshot_every_iters=0", "model.input_dropout=0.2")


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """This CPU reported as native bf16, and the verdict cache in a temporary folder."""
    monkeypatch.setattr(dev, "_cpu_model_and_flags", lambda: ("Test CPU", {"avx512_bf16"}))
    cache = tmp_path / "cache" / "precision_probe.json"
    monkeypatch.setattr(dev, "_default_cache_path", lambda: cache)
    return cache


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=False)
    return {
        f"{net}.{k}": v for net in ("generator", "discriminator") for k, v in state[net].items()
    }


def test_measuring_leaves_the_run_bit_identical(
    subject: dict[str, Path], tmp_path: Path, native_bf16: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dev, "BF16_MIN_SPEEDUP", 1e9)  # the measured verdict is fp32
    strict = loop.train(tiny_config(subject, *ITERS), tmp_path / "fp32")
    timed: list[torch.dtype] = []
    original = dev.measure_step

    def counting(step: dev.StepTimer, *args: int) -> tuple[list[float], list[float]]:
        return original(lambda dtype: timed.append(dtype) or step(dtype), *args)

    monkeypatch.setattr(dev, "measure_step", counting)
    auto = loop.train(tiny_config(subject, *ITERS, "train.precision=auto"), tmp_path / "auto")
    assert len(timed) >= 8  # the step really ran: warm-up and 3 rounds in each precision
    assert auto["precision"] == strict["precision"] == "fp32"
    choice = auto["precision_choice"]
    assert choice["how"].startswith("measured") and choice["fp32_s"] > 0 and choice["bf16_s"] > 0
    assert strict["precision_choice"]["how"] == "configured"
    assert auto["last"] == strict["last"]
    a, b = _weights(tmp_path / "auto"), _weights(tmp_path / "fp32")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log = (tmp_path / "auto" / "log.txt").read_text()
    assert "precision auto -> fp32: the step took" in log and "in bf16" in log
    assert json.loads(native_bf16.read_text())  # the verdict is cached


def test_a_faster_bf16_step_trains_in_bf16(
    subject: dict[str, Path], tmp_path: Path, native_bf16: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dev, "BF16_MIN_SPEEDUP", 0.0)  # any measurement favours bf16
    cfg = tiny_config(subject, "train.iters=1", "train.precision=auto")
    summary = loop.train(cfg, tmp_path / "run")
    assert summary["precision"] == "bf16"
    assert summary["precision_choice"]["how"].startswith("measured")
    assert "precision auto -> bf16" in (tmp_path / "run" / "log.txt").read_text()


def test_avx2_only_never_measures(
    subject: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dev, "_cpu_model_and_flags", lambda: ("Old CPU", {"avx2", "fma"}))
    monkeypatch.setattr(dev, "measure_step", lambda *a: pytest.fail("must not measure"))
    cfg = tiny_config(subject, "train.iters=1", "train.precision=auto")
    summary = loop.train(cfg, tmp_path / "run")
    assert summary["precision"] == "fp32"
    assert summary["precision_choice"]["how"] == "no native bf16"
    assert "precision auto -> fp32 (no native bf16)" in (tmp_path / "run" / "log.txt").read_text()


def test_the_signature_follows_the_step(subject: dict[str, Path], native_bf16: Path) -> None:
    """Batch, crop and architecture change the cache entry; the comparator's weights do not."""
    cfg = tiny_config(subject, "train.precision=auto")
    nets = build_nets(cfg, 40, torch.device("cpu"), DistInfo())
    other = build_nets(
        tiny_config(subject, "model.fc_width=32"), 40, torch.device("cpu"), DistInfo()
    )
    assert step_signature(cfg, nets, 8) == step_signature(cfg, nets, 8)
    assert step_signature(cfg, nets, 8) != step_signature(cfg, nets, 16)
    assert step_signature(cfg, nets, 8) != step_signature(cfg, other, 8)
    before = {k: v.clone() for k, v in nets.generator.state_dict().items()}
    choice = choose_run_precision(cfg, nets, 8, torch.device("cpu"))
    assert choice.how.startswith("measured")
    after = nets.generator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


TINY_STEP = [
    "--set", "model.fc_width=64", "--set", "model.output_size_px=64",
    "--set", "model.base_channels=16", "--set", "model.comparator=random-caffenet",
    "--set", "model.feature_layers=[conv1]", "--set", "data.image_size_px=64",
    "--set", "data.crop_px=63", "--set", "train.batch_size=8", "--voxels", "40",
    "--device", "cpu",
]  # fmt: skip


def test_the_precision_command_prints_the_cpu_and_the_choice(
    native_bf16: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from e2e_recon.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["precision", "--config", "paper", *TINY_STEP])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "CPU: Test CPU" in out and "native bf16 flags: avx512_bf16" in out
    assert "batch 8, 63 px, 40 voxels" in out
    assert "precision auto -> " in out and "in fp32 and" in out
    assert native_bf16.is_file()  # a training run of the same step reuses the verdict
    monkeypatch.setattr(dev, "_cpu_model_and_flags", lambda: ("Old CPU", {"avx2"}))
    result = runner.invoke(app, ["precision", "--config", "paper", *TINY_STEP])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "native bf16 flags: none" in out and "precision auto -> fp32 (no native bf16)" in out
