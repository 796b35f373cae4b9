"""The picture sections of the report: reconstruction grids and training progress."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from e2e_recon.report import figures
from e2e_recon.report.contents import GridData, load_grid, read_stats_rows
from e2e_recon.report.page import SET_TITLES, note

__all__ = ["grid_section", "training_section"]


def grid_section(run_dir: Path, settings: Mapping[str, Any]) -> str:
    """Stimulus and reconstruction grids of every test set, or a note if there are none."""
    grids = load_grid(run_dir, settings)
    if not grids:
        return note(
            f"No reconstructions found ({run_dir / 'recon' / 'index.csv'} is missing or empty)."
        )
    parts = []
    for set_name, grid in grids.items():
        parts.append(f"<h3>{html.escape(SET_TITLES.get(set_name, set_name))}</h3>")
        parts.append(
            note(f"{len(grid.names)} test images; rows: " + ", ".join(r.lower() for r in grid.rows))
        )
        parts.extend((grid.notes and [note(n) for n in grid.notes]) or [])
        parts.append(_grid_tables(grid))
    return "".join(parts)


def _grid_tables(grid: GridData, per_row: int = 10) -> str:
    """Blocks of ``per_row`` stimuli; each block a small table with one row per method."""
    blocks = []
    for start in range(0, len(grid.names), per_row):
        names = grid.names[start : start + per_row]
        rows = []
        for label, images in grid.rows.items():
            scores = grid.scores.get(label, [])
            cells = "".join(
                _image_cell(images[start + i], _caption(label, name, scores, start + i))
                for i, name in enumerate(names)
            )
            rows.append(f"<tr><th>{html.escape(label)}</th>{cells}</tr>")
        blocks.append(f'<table class="grid">{"".join(rows)}</table>')
    return "".join(blocks)


def _caption(label: str, name: str, scores: list[float | None], index: int) -> str:
    """Tooltip of one image: its row, stimulus name, and pixel identification when known."""
    score = scores[index] if index < len(scores) else None
    return f"{label}: {name}" + (
        f" (pixel identification {score:.0%})" if score is not None else ""
    )


def _image_cell(image: np.ndarray | None, caption: str) -> str:
    if image is None:
        return f'<td><div class="missing" title="{html.escape(caption)}">missing</div></td>'
    uri = figures.data_uri(figures.encode_png(image))
    alt = html.escape(caption)
    return f'<td><img src="{uri}" alt="{alt}" title="{alt}"></td>'


def training_section(run_dir: Path) -> str:
    """Training curves from ``stats.jsonl`` and the first and last training grids."""
    path = run_dir / "stats.jsonl"
    if not path.is_file():
        return note(f"No training statistics ({path.name} is missing).")
    rows, skipped = read_stats_rows(path)
    png = figures.training_curves_png(rows)
    constants = figures.constant_values_text(rows)
    if png is None and constants is None:
        return note(f"{path.name} holds no numeric values to plot.")
    text = f"{len(rows)} logged rows from {path.name}"
    text += f"; {skipped} unreadable lines skipped." if skipped else "."
    parts = (
        [f'<img class="plot" src="{figures.data_uri(png)}" alt="training curves">'] if png else []
    )
    parts += [note(constants)] if constants else []
    return "".join(parts) + note(text) + _progress_grids(run_dir / "report")


def _progress_grids(folder: Path) -> str:
    """The first and the last grid the trainer saved (``train_grid_iterNNNNNNN.png``)."""
    paths = sorted(folder.glob("train_grid_iter*.png"))
    shown = paths[:1] + paths[-1:] if len(paths) > 1 else paths
    parts = []
    for path in shown:
        iteration = figures.snapshot_iteration("@" + path.stem.removeprefix("train_grid_"))
        try:
            with Image.open(path) as image:
                rgb = figures.thumbnail(np.asarray(image.convert("RGB")), 1100)
        except OSError:
            continue
        # A file name is anyone's text: escaped in the attribute as in the caption.
        caption = html.escape(f"iteration {iteration:,}" if iteration is not None else path.name)
        parts.append(
            f'<figure><img class="plot" src="{figures.data_uri(figures.encode_png(rgb))}" '
            f'alt="training grid, {caption}"><figcaption>{caption}</figcaption></figure>'
        )
    if not parts:
        return ""
    intro = note(
        "Grids saved during training: rows alternate stimuli and the generator's current "
        "reconstructions (training patterns, then test patterns)."
    )
    return "<h3>Progress during training</h3>" + intro + "".join(parts)
