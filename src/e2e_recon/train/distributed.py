"""Multi-process training with PyTorch's DistributedDataParallel, launched by torchrun.

``torchrun --nproc-per-node N -m e2e_recon.cli train ...`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; the same command
without torchrun runs in one process. Backend: NCCL on CUDA, gloo otherwise. Rank
0 alone writes files (stats, checkpoints, grids). Each rank draws its own part of
the global batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from e2e_recon.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a (possibly one-process) training job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and shows progress."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when the torchrun environment variables are set."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"))


def env_info() -> DistInfo:
    """Rank, world size and local rank from the torchrun environment (defaults: 0, 1, 0)."""
    if not launched_by_torchrun():
        return DistInfo()
    return DistInfo(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ["LOCAL_RANK"]),
    )


def setup(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group when launched by torchrun; pick this rank's device.

    Parameters
    ----------
    device : torch.device
        The device chosen from the config; on CUDA each rank takes ``cuda:LOCAL_RANK``.

    Returns
    -------
    (DistInfo, torch.device)
    """
    info = env_info()
    if not info.is_distributed:
        return info, device
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info, device


def teardown() -> None:
    """Leave the process group (when one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """Wrap ``module`` in DistributedDataParallel when training on several processes.

    DDP broadcasts rank 0's parameters at construction, so every rank starts from
    the same weights, and averages gradients in ``backward``.
    """
    if not info.is_distributed:
        return module
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, broadcast_buffers=False)


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside a DDP and/or ``torch.compile`` wrapper."""
    inner = module
    for _ in range(3):
        if isinstance(inner, DistributedDataParallel):
            inner = inner.module
        orig = getattr(inner, "_orig_mod", None)
        if isinstance(orig, nn.Module):
            inner = orig
    return inner


def per_rank_batch(batch_size: int, info: DistInfo) -> int:
    """This rank's share of the global batch.

    Raises
    ------
    ConfigError
        When the global batch does not divide evenly between the processes.
    """
    if batch_size % info.world_size:
        raise ConfigError(
            f"train.batch_size={batch_size} does not divide between {info.world_size} "
            "processes; choose a multiple of the process count"
        )
    return batch_size // info.world_size


def mean_across_ranks(values: Sequence[float], info: DistInfo) -> list[float]:
    """Average a few scalars over all ranks (identity in one process).

    Used for the losses that drive the balance rule, so that every rank takes the
    same decision, and for the stop flag, so that every rank stops together.
    """
    if not info.is_distributed:
        return [float(v) for v in values]
    backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=backend_device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) / info.world_size for v in t.tolist()]


def gather_objects(obj: object, info: DistInfo) -> list[object]:
    """Every rank's ``obj`` as a list indexed by rank (``[obj]`` in one process)."""
    if not info.is_distributed:
        return [obj]
    out: list[object] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in one process)."""
    if info.is_distributed:
        dist.barrier()
