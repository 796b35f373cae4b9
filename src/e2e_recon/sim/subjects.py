"""``simulate``: one subject or an experiment of several, of either simulator family.

:func:`simulate_subjects` is what ``e2e-recon simulate`` calls. With one subject it is
the family's single-subject simulator, unchanged (the same streams, the same files);
with several it writes the layout described in :mod:`e2e_recon.sim.cohort`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from e2e_recon.sim.catalog import family_of
from e2e_recon.sim.cohort import check_out_dir, check_snr, check_subjects
from e2e_recon.sim.experiment import simulate_project_subjects
from e2e_recon.sim.presets import DEFAULT_SNR, get_preset
from e2e_recon.sim.prf import presets as prf_presets
from e2e_recon.sim.prf.subject import simulate_prf_subject, simulate_prf_subjects
from e2e_recon.sim.subject import simulate_subject

__all__ = ["simulate_subjects"]


def simulate_subjects(
    out_dir: str | os.PathLike[str],
    preset: str = "demo",
    n_subjects: int = 1,
    seed: int = 0,
    snr: float | None = None,
    *,
    subject: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Simulate one subject, or several who saw the same experiment, in the real layout.

    Parameters
    ----------
    out_dir : path
        Folder to create (must not exist, or be empty, unless ``overwrite``). It is
        built under a temporary sibling name and renamed at the end.
    preset : str
        A project preset (``tiny``, ``demo``, ``small``, ``paper``) or a pRF one
        (``prf-tiny``, ``prf-mixed-800x2``, ...: :func:`catalog.describe_presets`).
    n_subjects : int
        1 to 99. With 1 the output is the single-subject simulator's, byte for byte.
        With more, ``sub-01`` ... ``sub-NN`` share ``images/`` and the trial schedule
        and differ in voxel count (+- 20%), brain and noise.
    seed : int
        The same seed gives identical data.
    snr : float, optional
        Single-trial signal-to-noise ratio; default the family's calibrated value.
    subject : str, optional
        The subject's name with ``n_subjects == 1`` (default ``sub-01``); an error
        with more subjects, who are always named ``sub-01`` ... ``sub-NN``.
    progress : bool
        Show progress bars (one set per subject).
    overwrite : bool
        Replace an existing non-empty ``out_dir``.

    Returns
    -------
    dict
        With one subject, its summary (as :func:`sim.subject.simulate_subject` or
        :func:`sim.prf.subject.simulate_prf_subject` return it). With several, the
        experiment's: ``preset``, ``family``, ``seed``, ``snr``, ``n_subjects``,
        ``schedule``, ``out_dir``, ``images_dir``, ``truth_dir``, ``wall_s`` and
        ``subjects`` {name: that subject's summary, with ``files``, ``n_voxels``,
        ``roi_voxels`` and its calibration figures}; also in ``truth/summary.json``.

    Raises
    ------
    ConfigError
        An unknown preset, a bad ``n_subjects`` or ``snr``, or ``subject`` with
        several subjects.
    DataError
        ``out_dir`` exists and is not an empty folder (and not ``overwrite``).
    """
    family, name = family_of(preset)
    check_subjects(n_subjects, subject)
    check_snr(snr)
    out = Path(out_dir)
    if family == "project" and n_subjects == 1:
        return simulate_subject(
            out, preset, subject or "sub-01", seed, snr, progress=progress, overwrite=overwrite
        )
    check_out_dir(out, overwrite)
    if family == "project":
        used = float(DEFAULT_SNR if snr is None else snr)
        return simulate_project_subjects(
            out, get_preset(name), n_subjects, seed, used, progress, snr is None
        )
    used = float(prf_presets.DEFAULT_SNR if snr is None else snr)
    if n_subjects > 1:
        return simulate_prf_subjects(out, name, n_subjects, seed, used, progress)
    return simulate_prf_subject(
        out,
        **vars(prf_presets.PRESETS[name]),
        snr=used,
        seed=seed,
        subject=subject or "sub-01",
        progress=progress,
        overwrite=overwrite,
    )
