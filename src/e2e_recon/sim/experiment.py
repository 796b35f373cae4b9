"""Several subjects of the project simulator who saw the same experiment.

The stimuli, their files and the trial schedule (order of presentations, sessions,
runs) come from the stimulus streams of :mod:`sim.subject`, so they are the same for
every subject; each subject's brain (voxel count, area sizes, receptive fields, feature
weights) and trial noise come from streams named after the subject (``sub-02/brain``,
``sub-02/noise/training``, ...). The layout is described in :mod:`sim.cohort`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.progress import Progress

from e2e_recon.sim.brain import AREAS
from e2e_recon.sim.cohort import (
    building_folder,
    experiment_summary,
    subject_names,
    subject_stream,
    voxel_count,
)
from e2e_recon.sim.features import compute_features
from e2e_recon.sim.presets import SimPreset
from e2e_recon.sim.subject import (
    SubjectDraw,
    build_subject,
    finalise_paths,
    make_stimuli,
    stream_rng,
    write_truth,
)

__all__ = ["project_draw", "simulate_project_subjects"]

#: A subject's area sizes: the shares of :data:`brain.AREAS` times a uniform draw in 1 +- this.
AREA_SPREAD = 0.2


def project_draw(name: str, spec: SimPreset, seed: int) -> SubjectDraw:
    """Voxel count and area sizes of one subject, from the subject's ``size`` stream."""
    stream = subject_stream(name)
    rng = stream_rng(seed, f"{stream}size")
    n_voxels = voxel_count(spec.n_voxels, rng)
    spread = rng.uniform(1 - AREA_SPREAD, 1 + AREA_SPREAD, len(AREAS))
    shares = tuple(float(a.share * s) for a, s in zip(AREAS, spread, strict=True))
    return SubjectDraw(name, stream, n_voxels, shares)


def simulate_project_subjects(
    out: Path,
    spec: SimPreset,
    n_subjects: int,
    seed: int,
    snr: float,
    progress: bool,
    snr_is_default: bool = False,
) -> dict[str, Any]:
    """Write ``n_subjects`` (> 1) subjects of the project simulator into ``out``.

    Parameters
    ----------
    out : Path
        Folder to create (checked by the caller: absent or empty, or to be replaced).
    spec : SimPreset
    n_subjects : int
    seed : int
    snr : float
        Single-trial signal-to-noise ratio, the same for every subject.
    progress : bool
    snr_is_default : bool
        Recorded in each subject's summary, as the single-subject simulator does.

    Returns
    -------
    dict
        The experiment's summary: ``subjects`` maps each name to its own summary (the
        single-subject summary's keys, ``truth_dir`` being ``truth/<name>``).
    """
    start = time.perf_counter()
    subjects: dict[str, Any] = {}
    with building_folder(out) as tmp, Progress(disable=not progress, transient=True) as bar:
        sets = make_stimuli(spec, seed, bar)
        # Stimulus features do not depend on the subject: computed once for all.
        features = {key: compute_features(s.images) for key, s in sets.items()}
        for k, name in enumerate(subject_names(n_subjects)):
            began = time.perf_counter()
            context = {"spec": spec, "seed": seed, "snr": snr, "sets": sets}
            context.update(draw=project_draw(name, spec, seed), write_images=k == 0)
            summary = build_subject(tmp, context, bar, features)
            summary.update(
                snr_is_default=snr_is_default, wall_s=round(time.perf_counter() - began, 1)
            )
            summary = finalise_paths(summary, out, out / "truth" / name)
            write_truth(tmp / "truth" / name, summary.pop("_context"), summary)
            subjects[name] = summary
        overall = experiment_summary(out, spec.name, "project", seed, snr, subjects)
        overall["wall_s"] = round(time.perf_counter() - start, 1)
        (tmp / "truth" / "summary.json").write_text(json.dumps(overall, indent=2) + "\n")
    return overall
