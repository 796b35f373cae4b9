"""Peak memory of one training iteration (paper configuration by default), on any device.

On CUDA the allocator's own peak (``torch.cuda.max_memory_allocated`` and
``max_memory_reserved``) is measured. On the CPU, where torch keeps no such count,
every tensor storage an operation creates is followed until it is freed (a
dispatch mode), and the largest total is added to what lives across iterations:
parameters, buffers, Adam moments and the input batch. That tensor count is what
a GPU's allocator would hold for the same step in the same dtype, without the
CUDA context (about 0.5 GB), cuDNN workspaces and allocator rounding.

One iteration is the project's ``training_step`` with both networks training (the
gradients of both exist at its end). Prints one JSON object.

Usage: python benchmarks/step_memory.py [--preset paper] [--batch 64] [--precision fp32]
       [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from e2e_recon.config import load_config
from e2e_recon.device import cpu_info, resolve_device, resolve_precision
from e2e_recon.train import losses
from e2e_recon.train.balance import BalanceState
from e2e_recon.train.distributed import DistInfo
from e2e_recon.train.step import StepSettings, build_nets, build_optimisers, training_step


class LiveStorages(TorchDispatchMode):
    """Bytes of the tensor storages created under this mode and still alive; their peak."""

    def __init__(self, known: set[int]) -> None:
        super().__init__()
        self.known = known  # storages that existed before (counted by the caller)
        self.alive: dict[int, tuple[StorageWeakRef, int]] = {}
        self.current = self.peak = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = storage._cdata
                if key not in self.known and key not in self.alive:
                    self.alive[key] = (StorageWeakRef(storage), storage.nbytes())
        for key in [k for k, (ref, _) in self.alive.items() if ref.expired()]:
            del self.alive[key]
        self.current = sum(n for _, n in self.alive.values())
        self.peak = max(self.peak, self.current)
        return out


def _storages(tensors: list[torch.Tensor]) -> dict[int, int]:
    out = {}
    for t in tensors:
        storage = t.untyped_storage()
        out[storage._cdata] = storage.nbytes()
    return out


def main(argv: list[str]) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="paper", choices=("paper", "demo"))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--voxels", type=int, default=0, help="0: 15,000 (paper), 3,000 (demo)")
    parser.add_argument("--precision", default="fp32", help="fp32 | bf16 | auto")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    extra = ["model.comparator=random-caffenet"] if args.preset == "paper" else []
    cfg = load_config(args.preset, extra)
    voxels = args.voxels or (15_000 if args.preset == "paper" else 3_000)
    crop = cfg.data.crop_px
    torch.manual_seed(0)
    started = time.perf_counter()
    nets = build_nets(cfg, voxels, device, DistInfo())
    opt = build_optimisers(cfg, nets, device)
    dtype = resolve_precision(args.precision, device)
    settings = StepSettings(crop, tuple(cfg.model.feature_layers), device, dtype)
    x = torch.randn(args.batch, voxels, device=device)  # (B, V)
    real = torch.randn(args.batch, 3, crop, crop, device=device)  # (B, 3, crop, crop)
    real = real.contiguous(memory_format=torch.channels_last)
    both = BalanceState(train_d=True, train_g=True)

    def step() -> None:
        training_step(nets, opt, x, real, both, losses.LossWeights(), settings)

    step()  # creates the Adam moments
    for o in (opt.generator, opt.discriminator):
        o.zero_grad(set_to_none=True)  # gradients are counted as the step makes them
    modules = (nets.generator, nets.discriminator, nets.comparator)
    params = [p for m in modules for p in m.parameters()]
    persistent = [x, real, *params, *(b for m in modules for b in m.buffers())]
    for o in (opt.generator, opt.discriminator):
        persistent += [v for s in o.state.values() for v in s.values() if torch.is_tensor(v)]
    known = _storages(persistent)
    result: dict[str, object] = {
        "benchmark": "step_memory",
        "preset": args.preset,
        "batch": args.batch,
        "voxels": voxels,
        "crop_px": crop,
        "device": str(device),
        "precision": "bf16" if dtype == torch.bfloat16 else "fp32",
        "parameters_mb": round(sum(p.numel() * p.element_size() for p in params) / 2**20, 1),
        "persistent_mb": round(sum(known.values()) / 2**20, 1),
    }
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        result["cuda_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        result["cuda_peak_reserved_mb"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
        result["gpu"] = torch.cuda.get_device_name(device)
    else:
        with LiveStorages(set(known)) as live:
            step()
        result["step_peak_extra_mb"] = round(live.peak / 2**20, 1)
        result["tensor_peak_mb"] = round((sum(known.values()) + live.peak) / 2**20, 1)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result.update(cpu_info())
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
