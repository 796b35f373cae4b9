"""Presets of the pRF simulator family (``e2e-recon simulate --preset prf-<name>``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_SNR", "PRESETS", "SHARED_NOISE", "Preset", "describe"]

#: Single-trial SNR (signal SD / noise SD for a voxel of gain 1) at which ridge regression
#: reaches about 87-89% pairwise pixel identification on the mixed family at 800 x 2
#: training, 40 x 10 test (docs/simulators-and-greyscale.md has the curve).
DEFAULT_SNR = 0.1
SHARED_NOISE = 0.3  # share of the noise variance common to many voxels


@dataclass(frozen=True)
class Preset:
    """One variant: family, counts, image size, voxels."""

    family: str
    n_train: int
    train_presentations: int
    n_test: int
    test_presentations: int
    image_size_px: int
    n_voxels: int = 3000


#: Keyed without the ``prf-`` prefix that ``simulate --preset`` adds.
PRESETS = {
    "tiny": Preset("mixed", 12, 2, 4, 3, 32, 80),
    "mixed-90x1": Preset("mixed", 90, 1, 40, 10, 64),
    "mixed-200x2": Preset("mixed", 200, 2, 40, 10, 64),
    "mixed-800x1": Preset("mixed", 800, 1, 40, 10, 64),
    "mixed-800x2": Preset("mixed", 800, 2, 40, 10, 64),
    "mixed-1600x1": Preset("mixed", 1600, 1, 50, 10, 64),
    "digits-90x1": Preset("digits", 90, 1, 10, 1, 28),
    "digits-800x2": Preset("digits", 800, 2, 40, 10, 28),
}


def describe(name: str) -> str:
    """One line for ``simulate --help``: family, counts, image size."""
    p = PRESETS[name]
    what = "colour patterns" if p.family == "mixed" else "greyscale digits"
    return (
        f"pRF family, {what}: {p.n_train} x {p.train_presentations} training, "
        f"{p.n_test} x {p.test_presentations} test, {p.image_size_px} px, {p.n_voxels} voxels"
    )
