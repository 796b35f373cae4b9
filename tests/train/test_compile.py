"""``train.compile``: the compiled networks trace into one graph each, with no graph break."""

from __future__ import annotations

import pytest
import torch

from e2e_recon.config import load_config
from e2e_recon.train.distributed import DistInfo
from e2e_recon.train.step import build_nets


@pytest.mark.slow
def test_networks_compile_without_graph_breaks(tiny_run_overrides: tuple[str, ...]) -> None:
    cfg = load_config("demo", list(tiny_run_overrides))
    nets = build_nets(cfg, 40, torch.device("cpu"), DistInfo())
    crop, layers = cfg.data.crop_px, tuple(cfg.model.feature_layers)
    voxels = torch.randn(2, 40)  # (B, V)
    images = torch.randn(2, 3, crop, crop).contiguous(memory_format=torch.channels_last)
    passes = {
        "generator": (nets.generator, (voxels,), {}),
        "discriminator": (nets.discriminator, (images,), {}),
        "comparator": (nets.comparator, (images,), {"layers": layers}),
    }
    for name, (module, args, kwargs) in passes.items():
        explained = torch._dynamo.explain(module)(*args, **kwargs)
        reasons = [str(b.reason) for b in explained.break_reasons]
        assert explained.graph_break_count == 0, (name, reasons)
        assert explained.graph_count == 1, name
