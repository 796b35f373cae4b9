"""``e2e-recon precision``: what ``train.precision: auto`` would choose on this machine."""

from __future__ import annotations

from typing import Annotated

import typer

from e2e_recon.cli_support import ConfigOpt, DeviceOpt, SetOpt, console, user_errors

__all__ = ["precision"]


@user_errors
def precision(
    config: ConfigOpt = "paper",
    set_: SetOpt = None,
    voxels: Annotated[
        int, typer.Option(help="Voxels per sample (the first layer's width; your data's count).")
    ] = 15_000,
    device: DeviceOpt = "auto",
    remeasure: Annotated[
        bool, typer.Option(help="Time the step again even when a steady verdict is cached.")
    ] = False,
) -> None:
    """Print the CPU, its bf16 flags, and the precision auto would choose for a config.

    On a CPU with native bf16 this times the config's training step (random weights,
    random batch) in fp32 and bf16 and caches the verdict, which a training run with
    the same step then reuses. Example: [bold]e2e-recon precision --config paper --set
    model.comparator=random-caffenet[/] (the same timing, no weights file needed)
    """
    from e2e_recon.config import load_config
    from e2e_recon.device import cpu_info, resolve_device
    from e2e_recon.train.distributed import DistInfo
    from e2e_recon.train.precision_probe import choose_run_precision
    from e2e_recon.train.step import build_nets

    cfg = load_config(config, [*(set_ or []), "train.precision=auto", "train.compile=false"])
    torch_device = resolve_device(device)
    info = cpu_info()
    flags = ", ".join(str(f) for f in info["native_bf16_flags"]) or "none"  # type: ignore[attr-defined]
    console.print(f"CPU: {info['cpu_model']} ({info['cpu_count']} logical cores)", highlight=False)
    console.print(
        f"native bf16 flags: {flags}; avx512f {info['avx512f']}, avx2 {info['avx2']}; "
        f"torch {info['torch']}, {info['torch_threads']} threads; "
        f"load average {info['load_average_1min']}",
        highlight=False,
    )
    nets = build_nets(cfg, voxels, torch_device, DistInfo())
    batch = cfg.train.batch_size
    console.print(
        f"step: config {config}, batch {batch}, {cfg.data.crop_px} px, {voxels} voxels, "
        f"device {torch_device}",
        highlight=False,
    )
    choice = choose_run_precision(cfg, nets, batch, torch_device, remeasure=remeasure)
    console.print(choice.describe(), highlight=False)
