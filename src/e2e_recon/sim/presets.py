"""Sizes of the simulated subject: tiny (tests), demo (CPU demo), small (a small lab
dataset: few images, two presentations each), paper (the real experiment)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from e2e_recon.errors import ConfigError

__all__ = ["DEFAULT_SNR", "PRESETS", "SESSIONS", "SimPreset", "describe", "get_preset"]

#: Single-trial SNR (stimulus-driven SD / noise SD for a voxel of gain 1), chosen so that
#: the median noise ceilings at the demo preset (V1 46%, VC 26% for a mean of 12 trials)
#: are in the range of real recordings; a ridge pixel decoder then reaches about 87%
#: pairwise identification on the natural test set (see ``benchmarks/simulate.py``).
DEFAULT_SNR = 0.3

#: Session types: (set key, BData file part, image sub-folder).
SESSIONS: tuple[tuple[str, str, str], ...] = (
    ("training", "perceptionNaturalImageTraining", "training"),
    ("test", "perceptionNaturalImageTest", "test"),
    ("artificial", "perceptionArtificialImage", "artificial"),
    ("letters", "perceptionLetterImage", "letters"),
)


@dataclass(frozen=True)
class SimPreset:
    """Counts of one preset. ``repetitions`` maps each session type to its number of
    presentations per image; shapes (40) and letters (10) always have all images."""

    name: str
    image_size_px: int
    n_voxels: int
    n_training_images: int
    n_test_images: int
    repetitions: dict[str, int]
    runs_per_session: int = 8

    def as_dict(self) -> dict:
        """Plain dict for summaries and ``truth/``."""
        return asdict(self)


PRESETS: dict[str, SimPreset] = {
    "tiny": SimPreset(
        "tiny", 32, 400, 60, 10, {"training": 2, "test": 4, "artificial": 2, "letters": 2}
    ),
    # Shapes and letters keep the real experiment's 20 and 12 presentations.
    "demo": SimPreset(
        "demo", 64, 3000, 1000, 50, {"training": 3, "test": 12, "artificial": 20, "letters": 12}
    ),
    # A small, noisy lab dataset (issue 12 benchmark): 800 x 2 training, 40 x 10 test.
    "small": SimPreset(
        "small", 64, 3000, 800, 40, {"training": 2, "test": 10, "artificial": 5, "letters": 5}
    ),
    # The real experiment: 1,200 x 5 training, 50 x 24 test, 40 x 20 shapes, 10 x 12 letters.
    "paper": SimPreset(
        "paper",
        248,
        12000,
        1200,
        50,
        {"training": 5, "test": 24, "artificial": 20, "letters": 12},
    ),
}


_PURPOSE = {
    "tiny": "tests, seconds",
    "demo": "the CPU demo",
    "small": "a small, noisy lab dataset",
    "paper": "the real experiment's size",
}


def describe(name: str) -> str:
    """One line for ``simulate --help``: purpose, counts, image size."""
    p = PRESETS[name]
    reps = p.repetitions
    return (
        f"project family, {_PURPOSE.get(name, name)}: {p.n_training_images} x "
        f"{reps['training']} training, {p.n_test_images} x {reps['test']} test, "
        f"{p.image_size_px} px, {p.n_voxels} voxels"
    )


def get_preset(name: str) -> SimPreset:
    """Look up a preset by name.

    Raises
    ------
    ConfigError
        If the name is unknown.
    """
    if name not in PRESETS:
        raise ConfigError(
            f"Unknown simulation preset {name!r}; choose one of {', '.join(PRESETS)}."
        )
    return PRESETS[name]
