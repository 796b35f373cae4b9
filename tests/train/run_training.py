"""Run ``train()`` from a saved config in a fresh process (for the subprocess tests).

Usage: ``python run_training.py CONFIG_YAML RUN_DIR [--resume] [--dump-weights DIR]``.
With ``--dump-weights`` each process (each torchrun rank) saves the generator and
discriminator weights it holds in memory at the end to ``DIR/rank<R>.pt``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from e2e_recon.config import load_config
from e2e_recon.train import loop


def _dumping_run_loop(out: Path) -> Any:
    original = loop._run_loop

    def run_loop(run: Any) -> dict[str, Any]:
        summary = original(run)
        weights = {
            "generator": run.nets.generator.state_dict(),
            "discriminator": run.nets.discriminator.state_dict(),
        }
        torch.save(weights, out / f"rank{os.environ.get('RANK', '0')}.pt")
        return summary

    return run_loop


def main(argv: list[str]) -> None:
    if "--dump-weights" in argv:
        loop._run_loop = _dumping_run_loop(Path(argv[argv.index("--dump-weights") + 1]))
    summary = loop.train(load_config(argv[0]), Path(argv[1]), resume="--resume" in argv)
    print("SUMMARY " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
