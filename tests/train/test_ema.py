"""Moving average of the generator weights: the arithmetic (train() with it on: test_train_loop)."""

from __future__ import annotations

import torch
from torch import nn

from e2e_recon.train.ema import GeneratorEMA


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
