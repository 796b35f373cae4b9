"""Simulated subjects: stimuli, an encoding model of visual cortex, and a writer that
produces a complete dataset in the real data's layout; a second, independent family
(:mod:`e2e_recon.sim.prf`); :func:`simulate_subjects` writes one subject or an experiment
of several, of either family."""

from __future__ import annotations

from typing import Any

__all__ = ["simulate_subjects"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that the light modules (presets, catalog) stay light.
    if name == "simulate_subjects":
        from e2e_recon.sim.subjects import simulate_subjects

        return simulate_subjects
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
