"""The paper's analyses beyond one run: loss ablations and accuracy against training-set size.

Each experiment trains one run per condition in one numbered folder, reconstructs,
evaluates, and writes ``results.csv``, ``results.json`` and one plot.
"""

from __future__ import annotations

from e2e_recon.experiments.ablation import ABLATION_CONDITIONS, run_ablation
from e2e_recon.experiments.train_size import default_sizes, run_train_size

__all__ = ["ABLATION_CONDITIONS", "default_sizes", "run_ablation", "run_train_size"]
