"""Training: the published DeePSiM procedure, resumable and multi-process.

``train(cfg, run_dir, resume=False) -> dict`` runs it; ``export_generator`` writes a
training snapshot's generator in the project ``.pt`` format (with ``norm``).
"""

from __future__ import annotations

from e2e_recon.train.checkpoint import export_generator
from e2e_recon.train.loop import train

__all__ = ["export_generator", "train"]
