"""Every preset of both simulator families, with a one-line description.

Light on purpose (no numpy): ``e2e-recon simulate --help`` lists these.
"""

from __future__ import annotations

from e2e_recon.errors import ConfigError
from e2e_recon.sim import presets as project
from e2e_recon.sim.prf import presets as prf

__all__ = ["PRF_PREFIX", "describe_presets", "family_of"]

#: ``simulate --preset prf-<name>`` is the pRF family's preset ``<name>``.
PRF_PREFIX = "prf-"


def describe_presets() -> dict[str, str]:
    """Preset name -> one-line description, the project family first."""
    names = {name: project.describe(name) for name in project.PRESETS}
    names.update({PRF_PREFIX + name: prf.describe(name) for name in prf.PRESETS})
    return names


def family_of(preset: str) -> tuple[str, str]:
    """``("project", name)`` or ``("prf", name without the prefix)``.

    Raises
    ------
    ConfigError
        If neither family has the preset.
    """
    if preset.startswith(PRF_PREFIX) and preset[len(PRF_PREFIX) :] in prf.PRESETS:
        return "prf", preset[len(PRF_PREFIX) :]
    if preset in project.PRESETS:
        return "project", preset
    raise ConfigError(
        f"Unknown simulation preset {preset!r}; choose one of {', '.join(describe_presets())}."
    )
