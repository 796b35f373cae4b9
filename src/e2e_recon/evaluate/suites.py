"""Evaluation suites: ``default`` (the project's table), ``nsd`` and ``kamitani``.

``e2e-recon evaluate --suite nsd --suite kamitani`` adds, beside or instead of the
default table, the two conventions papers report (see :mod:`.nsd_suite` and
:mod:`.kamitani_suite`). Their results go to ``metrics.json`` under ``"suites"``
and are printed by :func:`suite_tables`. The networks come from the data home
(``e2e-recon download eval-nets``); a missing one leaves its columns empty and a
notice says which command fetches it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.table import Table
from torch import nn

from e2e_recon.data.geometry import ImageGeometry
from e2e_recon.data.labels import IMAGE_SUFFIXES
from e2e_recon.errors import ConfigError, DataError
from e2e_recon.evaluate import recon_files as files
from e2e_recon.evaluate.kamitani_suite import DEFAULT_N_WAY, Distractors, run_kamitani
from e2e_recon.evaluate.nsd_suite import RESIZE_MODES, nsd_cell, run_nsd
from e2e_recon.evaluate.suite_common import NetSource, SuiteGroup, score_text, unverified_lines

SUITES = ("default", "nsd", "kamitani")


def parse_suites(values: Iterable[str]) -> tuple[str, ...]:
    """Suite names from repeated and/or comma-separated options; ``default`` when none.

    Raises
    ------
    ConfigError
        An unknown name, naming the known ones.
    """
    names = [part.strip().lower() for value in values for part in value.split(",")]
    names = [name for name in names if name]
    unknown = [name for name in names if name not in SUITES]
    if unknown:
        raise ConfigError(f"--suite {unknown[0]!r} is not a suite; choose from {', '.join(SUITES)}")
    return tuple(dict.fromkeys(names)) or ("default",)


def parse_n_way(text: str) -> tuple[int, ...]:
    """``"2,5,10"`` -> (2, 5, 10); each at least 2."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--n-way {text!r}: give whole numbers separated by commas") from None
    if not values or min(values) < 2:
        raise ConfigError(f"--n-way {text!r}: each n must be 2 or more (e.g. 2,5,10)")
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True)
class SuiteOptions:
    """Settings of the ``nsd`` and ``kamitani`` suites.

    Attributes
    ----------
    home : Path, optional
        Data home holding ``weights/`` (default: ``E2E_RECON_HOME`` or the user cache).
    n_way : tuple of int
        n of the n-way identifications.
    distractors_dir : Path, optional
        Images for n-way identification (any image files, subfolders included);
        default: the other stimuli of the set.
    nets : mapping, optional
        Network key -> module, used instead of the data home (random-weight
        instances in tests).
    batch_size : int
        Images per forward pass.
    nsd_resize : {"antialias", "notebook"}
        nsd: antialias when shrinking (default), or resize as the published notebook
        did (torchvision 0.14.1, no antialiasing), to match its tables.
    """

    home: Path | None = None
    n_way: tuple[int, ...] = DEFAULT_N_WAY
    distractors_dir: Path | None = None
    nets: Mapping[str, nn.Module] | None = field(default=None, compare=False)
    batch_size: int = 16
    nsd_resize: str = "antialias"

    def __post_init__(self) -> None:
        if self.nsd_resize not in RESIZE_MODES:
            raise ConfigError(
                f"--nsd-resize {self.nsd_resize!r}: choose from {', '.join(RESIZE_MODES)}"
            )


def run_suites(
    groups: list[SuiteGroup],
    suites: Sequence[str],
    options: SuiteOptions,
    device: torch.device,
    geometry: ImageGeometry,
) -> tuple[dict[str, Any], list[str]]:
    """Run the non-default suites on the groups of an evaluation.

    Returns
    -------
    (dict, list of str)
        Suite name -> its table (see :func:`~.nsd_suite.run_nsd`,
        :func:`~.kamitani_suite.run_kamitani`), and notices (missing weights).
    """
    out: dict[str, Any] = {}
    notices: list[str] = []
    if "nsd" in suites:
        source = NetSource(options.home, device, options.nets)
        out["nsd"] = run_nsd(groups, source, options.batch_size, options.nsd_resize)
        notices += [f"nsd suite: {line}" for line in source.notices()]
    if "kamitani" in suites:
        source = NetSource(options.home, device, options.nets)
        distractors = None
        if options.distractors_dir is not None:
            sizes = sorted({int(g.recons.shape[1]) for g in groups})
            distractors = load_distractors(options.distractors_dir, sizes, geometry)
        out["kamitani"] = run_kamitani(
            groups, source, options.n_way, distractors, options.batch_size
        )
        notices += [f"kamitani suite: {line}" for line in source.notices()]
        notices += _nway_notices(out["kamitani"], options.n_way)
    return out, notices


def load_distractors(folder: Path, sizes: Sequence[int], geometry: ImageGeometry) -> Distractors:
    """Every image below ``folder``, prepared as the stimuli are, at each size.

    Raises
    ------
    DataError
        The folder is missing or holds no image.
    """
    if not folder.is_dir():
        raise DataError(f"--distractors {folder}: not a folder; give a folder of images")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DataError(
            f"--distractors {folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    images = {
        size: files.load_stimuli(paths, size, geometry.image_size_px, geometry.crop_px)
        for size in sizes
    }
    return Distractors(images, str(folder), tuple(p.stem for p in paths))


def _nway_notices(table: Mapping[str, Any], n_way: Sequence[int]) -> list[str]:
    """Say when an n-way analysis had too few distractors to be scored."""
    notes = []
    for row in table["rows"]:
        pixel = row["scores"].get("pixel", {})
        empty = [n for n in n_way if pixel.get(f"{n}way") is None]
        if empty:
            notes.append(
                f"kamitani suite: set {row['set']!r}, method {row['method']!r}: "
                f"{', '.join(f'{n}-way' for n in empty)} left empty: fewer than n - 1 "
                "distractors (give more with --distractors)"
            )
    return notes


# -- printed tables ------------------------------------------------------------------------


def suite_tables(result: Mapping[str, Any]) -> list[Table]:
    """Rich tables of the suites in an evaluation result (none when only ``default`` ran)."""
    suites = result.get("suites") or {}
    tables = []
    if "nsd" in suites:
        tables.append(nsd_table(suites["nsd"]))
    if "kamitani" in suites:
        tables += kamitani_tables(suites["kamitani"])
    return tables


def nsd_table(nsd: Mapping[str, Any]) -> Table:
    """Set x method rows, the eight published columns (arrows: which way is better)."""
    table = Table(title="NSD benchmark metrics")
    for name in ("Set", "Method"):
        table.add_column(name)
    table.add_column("N", justify="right")
    for column in nsd["columns"]:
        arrow = "↑" if column["higher_is_better"] else "↓"
        table.add_column(f"{column['label']} {arrow}", justify="right")
    for row in nsd["rows"]:
        cells = [nsd_cell(c, row["scores"].get(c["key"])) for c in nsd["columns"]]
        table.add_row(row["set"], row["method"], str(row["n_images"]), *cells)
    table.caption = (
        f"Definitions: {nsd['source']}"
        + (f"; missing networks: {', '.join(nsd['missing'])}" if nsd["missing"] else "")
        + "".join(f"\n{line}" for line in unverified_lines(nsd))
    )
    return table


def kamitani_tables(kamitani: Mapping[str, Any]) -> list[Table]:
    """One table per (set, method): feature spaces x analyses, accuracies in %."""
    tables = []
    for row in kamitani["rows"]:
        table = Table(
            title=f"Identification accuracy (Kamitani lab): {row['set']}, {row['method']}, "
            f"{row['n_images']} images"
        )
        table.add_column("Features")
        for analysis in kamitani["analyses"]:
            table.add_column(analysis["label"], justify="right")
        for space in kamitani["feature_spaces"]:
            values = row["scores"].get(space["key"], {})
            cells = [score_text(values.get(a["key"]), True) for a in kamitani["analyses"]]
            table.add_row(space["label"], *cells)
        chance = ", ".join(f"{a['label']} {100 * a['chance']:.0f}%" for a in kamitani["analyses"])
        table.caption = (
            f"Chance: {chance}. Distractors: {kamitani['distractors']['source']}. "
            f"Definitions: {kamitani['source']}"
            + (
                f"; missing networks: {', '.join(kamitani['missing'])}"
                if kamitani["missing"]
                else ""
            )
            + "".join(f"\n{line}" for line in unverified_lines(kamitani))
        )
        tables.append(table)
    return tables
