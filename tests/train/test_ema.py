"""Moving average of the generator weights: the arithmetic, and train() with it on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tiny_train_subject import make_tiny_subject, tiny_config
from torch import nn

from e2e_recon.config import with_overrides
from e2e_recon.device import torch_threads
from e2e_recon.errors import ConfigError
from e2e_recon.nets.loading import load_generator
from e2e_recon.train import checkpoint as ckpt_io
from e2e_recon.train.ema import GeneratorEMA
from e2e_recon.train.loop import train


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def subject(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_tiny_subject(tmp_path_factory.mktemp("subject"))


def test_average_follows_the_warm_up_decay_and_copies_buffers() -> None:
    net = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
    ema = GeneratorEMA(net, decay=0.9)
    start = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].running_mean.fill_(5.0)
    ema.update(net)  # first decay: min(0.9, 1/10) = 0.1, so 90% of the way to the new weights
    assert torch.allclose(ema.averaged[0].weight, start + 0.9)
    assert ema.averaged[1].running_mean.item() == 5.0
    for _ in range(200):
        ema.update(net)
    assert ema.current_decay() == 0.9
    assert torch.allclose(ema.averaged[0].weight, start + 1.0)
    assert not any(p.requires_grad for p in ema.averaged.parameters())


def test_state_round_trip_restores_weights_and_count() -> None:
    net = nn.Linear(3, 2)
    ema = GeneratorEMA(net, decay=0.99)
    with torch.no_grad():
        net.weight.mul_(2.0)
    ema.update(net)
    other = GeneratorEMA(nn.Linear(3, 2), decay=0.99)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1
    assert torch.equal(other.averaged.weight, ema.averaged.weight)


@pytest.mark.parametrize("decay", [1.0, -0.1])
def test_decay_outside_zero_one_is_refused(subject: dict[str, Path], tmp_path: Path, decay) -> None:
    with pytest.raises(ConfigError, match=r"train\.ema_decay"):
        train(tiny_config(subject, f"train.ema_decay={decay}"), tmp_path / "run")


def test_exported_generator_is_the_average_and_resume_is_exact(
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


def test_resume_of_a_run_without_average_starts_it_from_the_resumed_weights(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    cfg = tiny_config(subject, "train.iters=2")
    train(cfg, tmp_path / "run")
    longer = with_overrides(cfg, ["train.iters=3", "train.ema_decay=0.9"])
    train(longer, tmp_path / "run", resume=True)
    ckpt = ckpt_io.load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert ckpt["generator_ema"]["updates"] == 1
