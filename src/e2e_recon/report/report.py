"""The HTML report of a run: data statement, image grids, metrics, training curves, config.

:func:`write_report` reads what a run directory holds (``config.yaml``,
``summary.json``, ``stats.jsonl``, ``recon/index.csv``, ``recon/metrics.json``)
and writes one self-contained page: every image is embedded as a base64 PNG and
the styling is inline, so the file can be mailed or opened offline. A part that
is missing or unreadable becomes a short note on the page, never an error.
:func:`save_grid_png` writes the natural-image grid alone, for the README.

Notes and set titles are in :mod:`e2e_recon.report.page`, the image grids
and training curves in :mod:`e2e_recon.report.pictures`; the data, metrics,
snapshot and configuration sections are built here.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from e2e_recon import __version__
from e2e_recon.errors import DataError
from e2e_recon.fileio import atomic_write_bytes
from e2e_recon.report import figures
from e2e_recon.report.contents import (
    data_statement,
    load_grid,
    method_title,
    read_json,
    run_settings,
)
from e2e_recon.report.metrics_file import Metrics, MetricValue, SetMetrics, load_metrics
from e2e_recon.report.page import SET_TITLES
from e2e_recon.report.page import note as _note
from e2e_recon.report.paired import paired_table
from e2e_recon.report.pictures import grid_section, training_section
from e2e_recon.report.suites import suites_html
from e2e_recon.runs import get_logger, require_run_dir

__all__ = ["SET_TITLES", "render_report", "save_grid_png", "write_report"]

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:0;
 background:#f4f5f7;color:#1d2330;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px}
header{background:#1d2b45;color:#fff;padding:26px 28px 20px}
header .inner{max-width:1180px;margin:0 auto}
header h1{margin:0 0 4px;font-size:26px;font-weight:600}
header p{margin:0;color:#c5cee0;font-size:14px}
nav{margin-top:14px;font-size:14px}nav a{color:#9fc3ff;margin-right:18px;text-decoration:none}
section{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);
 padding:18px 24px;margin:22px 0}
h2{font-size:20px;margin:0 0 12px;border-bottom:1px solid #e6e8ec;padding-bottom:8px}
h3{font-size:16px;margin:20px 0 8px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:6px 18px;margin:0;font-size:14px}
dl.facts dt{color:#5b6478;font-weight:600}dl.facts dd{margin:0;word-break:break-word}
.badge{display:inline-block;border-radius:4px;padding:1px 8px;font-size:12px;font-weight:600;
 margin-right:6px}
.sim{background:#e3efff;color:#0b4ea2}.real{background:#e2f6e9;color:#146c2e}
.warn{background:#fff1d6;color:#8a5300}.unknown{background:#eceef2;color:#444}
.note{color:#6b7385;font-style:italic;font-size:14px}
table.grid{border-collapse:separate;border-spacing:3px;margin:6px 0 14px}
table.grid th{font-size:12px;color:#5b6478;text-align:right;padding-right:8px;font-weight:600;
 white-space:nowrap}
table.grid img,table.grid .missing{width:90px;height:90px;display:block;border-radius:3px}
table.grid .missing{background:#eceef2;color:#8a92a3;font-size:11px;text-align:center;
 line-height:90px}
table.metrics{border-collapse:collapse;font-size:14px;width:100%}
table.metrics th,table.metrics td{padding:6px 8px;border-bottom:1px solid #e6e8ec;text-align:right}
table.metrics td{white-space:nowrap}
table.metrics th{background:#f7f8fa;font-weight:600}
table.metrics td.l,table.metrics th.l{text-align:left}
table.metrics tr.chance td{color:#7a8194}
table.metrics .ci{display:block;color:#7a8194;font-size:11.5px}
table.metrics .best{font-weight:700}
table.metrics tr.first td{border-top:2px solid #c9ced8}
table.metrics td.set{vertical-align:top;font-weight:600}
img.plot{max-width:100%;height:auto}
figure{margin:8px 0 14px}figcaption{font-size:13px;color:#5b6478}
pre{background:#f7f8fa;border-radius:6px;padding:12px 14px;font-size:12.5px;overflow:auto}
details{margin:6px 0}summary{cursor:pointer;font-weight:600;font-size:15px;padding:4px 0}
footer{color:#7a8194;font-size:12px;text-align:center;margin-top:30px}
"""


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the self-contained HTML report of a run.

    Parameters
    ----------
    run_dir : Path
        A run directory (holds ``config.yaml``).
    out : Path, optional
        HTML file to write; default ``run_dir/report/index.html``.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    CheckpointError
        If ``run_dir`` is not a run directory.
    """
    run_dir = require_run_dir(Path(run_dir))
    out = _file_to_write(out, "--out") if out is not None else run_dir / "report" / "index.html"
    page = render_report(run_dir)
    atomic_write_bytes(out, page.encode("utf-8"))
    return out


def save_grid_png(
    run_dir: Path, out_png: Path, set_name: str = "natural", max_images: int = 10
) -> Path:
    """Save one test set's grid (stimulus over reconstructions) as a PNG, e.g. for the README.

    Parameters
    ----------
    run_dir : Path
        A run directory with ``recon/index.csv``.
    out_png : Path
        PNG file to write.
    set_name : str
        Test set (``natural``, ``shapes`` or ``letters``).
    max_images : int
        Number of stimuli (columns) shown.

    Returns
    -------
    Path

    Raises
    ------
    CheckpointError
        If ``run_dir`` is not a run directory.
    DataError
        If the run has no reconstructions of ``set_name``.
    """
    run_dir = require_run_dir(Path(run_dir))
    out_png = _file_to_write(out_png, "--grid-png")
    settings = run_settings(run_dir)
    grids = load_grid(run_dir, settings, max_images=max_images, sets=(set_name,))
    grid = grids.get(set_name)
    if grid is None or not grid.names:
        raise DataError(
            f"{run_dir / 'recon' / 'index.csv'} lists no reconstructions of the {set_name!r} set; "
            "run 'e2e-recon reconstruct' (or the demo) first"
        )
    title = f"{SET_TITLES.get(set_name, set_name)}: " + ", ".join(r.lower() for r in grid.rows)
    atomic_write_bytes(Path(out_png), figures.grid_png(grid.rows, title))
    return Path(out_png)


def _file_to_write(path: Path, option: str) -> Path:
    """``path``, unless it is a folder (a page is a file: never replace a folder)."""
    if Path(path).is_dir():
        raise DataError(f"{option} {path} is a folder; give the HTML or PNG file to write")
    return Path(path)


def render_report(run_dir: Path) -> str:
    """The report page of ``run_dir`` as an HTML string (see :func:`write_report`)."""
    settings = run_settings(run_dir)
    try:
        metrics, metrics_note = load_metrics(run_dir / "recon")
    except Exception as exc:  # an odd metrics file must not cost the rest of the page
        metrics, metrics_note = Metrics(), f"The metrics could not be read ({exc})."
    sections = [
        ("data", "Data and models", lambda: _data_section(run_dir, settings, metrics)),
        ("recon", "Reconstructions", lambda: grid_section(run_dir, settings)),
        ("metrics", "Metrics", lambda: _metrics_and_suites(run_dir, metrics, metrics_note)),
        ("training", "Training", lambda: training_section(run_dir)),
        ("snapshots", "Metric over snapshots", lambda: _snapshot_section(metrics)),
        ("config", "Configuration", lambda: _config_section(run_dir)),
    ]
    body = "".join(_section(key, title, build) for key, title, build in sections)
    nav = "".join(f'<a href="#{key}">{html.escape(title)}</a>' for key, title, _ in sections)
    title = f"e2e-recon report: {run_dir.resolve().name}"
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f'<header><div class="inner"><h1>{html.escape(title)}</h1>'
        f"<p>End-to-end deep image reconstruction (Shen et al. 2019) &middot; "
        f"written {when} by e2e-recon {__version__}</p><nav>{nav}</nav></div></header>"
        f"<main>{body}</main><footer>Self-contained page: all images are embedded.</footer>"
        f"</body></html>\n"
    )


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


def _section(key: str, title: str, build: Callable[[], str]) -> str:
    """One page section; a failure in its builder becomes a note instead of a crash."""
    try:
        content = build()
    except Exception as exc:  # a report must show what it can, whatever one part holds
        get_logger().warning("report section %r skipped: %s", title, exc)
        content = _note(f"This part could not be shown ({type(exc).__name__}: {exc}).")
    return f'<section id="{key}"><h2>{html.escape(title)}</h2>{content}</section>'


def _data_section(run_dir: Path, settings: Mapping[str, Any], metrics: Metrics) -> str:
    statement = data_statement(run_dir, settings)
    if metrics.feature_networks:  # what the evaluation used, rather than what was configured
        statement.extra = [e for e in statement.extra if e[0] != "Evaluation network"]
        statement.extra.insert(0, ("Evaluation network", "\n".join(metrics.feature_networks)))
    kind_badge = {
        "simulated": '<span class="badge sim">SIMULATED SUBJECT</span>',
        "real": '<span class="badge real">RECORDED fMRI</span>',
    }.get(statement.kind, '<span class="badge unknown">DATA ORIGIN UNKNOWN</span>')
    comparator_badge = (
        '<span class="badge warn">RANDOM WEIGHTS</span>'
        if statement.comparator_random
        else '<span class="badge real">PRETRAINED</span>'
    )
    rows = [("Data", kind_badge + html.escape(statement.kind_text))]
    rows += [(k, html.escape(v).replace("\n", "<br>")) for k, v in statement.facts]
    rows.append(("Comparator", comparator_badge + html.escape(statement.comparator_text)))
    rows += [(k, html.escape(v).replace("\n", "<br>")) for k, v in statement.extra]
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{v}</dd>" for k, v in rows)
    return f'<dl class="facts">{items}</dl>'


def _metrics_and_suites(run_dir: Path, metrics: Metrics, note: str) -> str:
    """The default table, then the tables of the other evaluation suites that ran."""
    suites = suites_html(run_dir / "recon")
    if suites and not metrics.sets:  # only other suites were evaluated
        return suites
    return _metrics_section(metrics, note) + suites


def _metrics_section(metrics: Metrics, note: str) -> str:
    if not metrics.sets:
        return _note(note or "No metrics (recon/metrics.json is missing).")
    keys = _metric_keys(metrics)
    head = "".join(f"<th>{html.escape(metrics.label(k))}</th>" for k in keys)
    body = "".join(_metric_rows(name, m, keys, metrics) for name, m in metrics.sets.items())
    explain = [
        "Mean over test images, with its bootstrap interval over images below; identification "
        "is two-way (chance 50%). The best value of each set and column is in bold.",
        *metrics.notes,
        *([note] if note else []),
    ]
    return (
        f'<table class="metrics"><tr><th class="l">Test set</th><th>Images</th>'
        f'<th class="l">Method</th>{head}</tr>{body}</table>{"".join(map(_note, explain))}'
        f"{paired_table(metrics, keys)}"
    )


def _metric_keys(metrics: Metrics) -> list[str]:
    """Columns: the evaluation's metric order, then any other key found in the results."""
    keys = dict.fromkeys(metrics.labels)
    for set_metrics in metrics.sets.values():
        for values in [*set_metrics.methods.values(), set_metrics.chance]:
            keys.update(dict.fromkeys(values))
    return list(keys)


def _metric_rows(set_name: str, set_metrics: SetMetrics, keys: list[str], metrics: Metrics) -> str:
    methods = {
        m: v for m, v in set_metrics.methods.items() if figures.snapshot_iteration(m) is None
    }
    best: dict[str, float] = {}
    for values in methods.values():
        for key, metric in values.items():
            if metric.value is not None and metric.value > best.get(key, -math.inf):
                best[key] = metric.value
    rows: list[tuple[str, str, str]] = []  # (css class, method title, cells)
    for method, values in methods.items():
        cells = "".join(_metric_cell(metrics, k, values.get(k), best.get(k)) for k in keys)
        rows.append(("", method_title(method), cells))
    if set_metrics.chance:
        cells = "".join(_metric_cell(metrics, k, set_metrics.chance.get(k)) for k in keys)
        rows.append(("chance", "Chance", cells))
    # The set's name and image count appear once, on its first row, which draws a rule above.
    title = html.escape(SET_TITLES.get(set_name, set_name))
    head = (
        f'<td class="l set" rowspan="{len(rows)}">{title}</td>'
        f'<td class="set" rowspan="{len(rows)}">{set_metrics.n_images or ""}</td>'
    )
    lines = [
        f'<tr class="{css}{" first" if i == 0 else ""}">{head if i == 0 else ""}'
        f'<td class="l">{html.escape(method)}</td>{cells}</tr>'
        for i, (css, method, cells) in enumerate(rows)
    ]
    span = len(keys) + 3
    lines += [f'<tr><td class="l" colspan="{span}">{_note(n)}</td></tr>' for n in set_metrics.notes]
    return "".join(lines)


def _metric_cell(
    metrics: Metrics, key: str, value: MetricValue | None, best: float | None = None
) -> str:
    if value is None:
        return "<td>&ndash;</td>"
    if value.value is None:
        return '<td title="undefined for this set">undefined</td>'
    percent = metrics.is_identification(key)
    text = _format(value.value, percent)
    if value.low is not None and value.high is not None:
        low, high = _format(value.low, percent), _format(value.high, percent)
        text += f'<span class="ci">[{low}, {high}]</span>'
    css = ' class="best"' if best is not None and value.value >= best else ""
    return f"<td{css}>{text}</td>"


def _format(value: float, percent: bool) -> str:
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def _snapshot_section(metrics: Metrics) -> str:
    """The first identification metric (pixel identification) of every evaluated snapshot."""
    for key in [k for k in _metric_keys(metrics) if metrics.is_identification(k)]:
        points: dict[str, list[figures.SnapshotPoint]] = {}
        references: dict[str, dict[str, float]] = {}
        for set_name, set_metrics in metrics.sets.items():
            for method, values in set_metrics.methods.items():
                iteration = figures.snapshot_iteration(method)
                value = values.get(key)
                if iteration is not None and value is not None and value.value is not None:
                    points.setdefault(set_name, []).append(
                        figures.SnapshotPoint(iteration, value.value, value.low, value.high)
                    )
            refs = {"ridge": set_metrics.methods.get("ridge", {}), "chance": set_metrics.chance}
            references[set_name] = {
                name: v.value
                for name, values in refs.items()
                if (v := values.get(key)) is not None and v.value is not None
            }
        if points:
            png = figures.snapshot_metric_png(points, references, metrics.label(key))
            return f'<img class="plot" src="{figures.data_uri(png)}" alt="metric over snapshots">'
    return _note("No snapshot reconstructions were evaluated (methods like e2e@iter0010000).")


def _config_section(run_dir: Path) -> str:
    text = (run_dir / "config.yaml").read_text(encoding="utf-8")
    summary = read_json(run_dir / "summary.json")
    parts = [("config.yaml", text)]
    if isinstance(summary, dict):
        parts.append(("summary.json", json.dumps(summary, indent=2)))
    return "".join(
        f"<details><summary>{name}</summary><pre>{html.escape(content)}</pre></details>"
        for name, content in parts
    )
