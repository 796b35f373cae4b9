"""The experiments' plots, drawn from the long-format result rows (see :mod:`.results`).

- ``ablation.png``: grouped bars, one panel per identification metric (pixel, then each
  feature layer), one group per test set, one bar per condition plus the ridge
  baseline; whiskers are the bootstrap intervals, the dashed line is chance.
- ``train_size.png``: one panel per test set, identification against the number of
  training images (log axis) with interval bars; the ridge baseline (all training
  images) as dashed lines in the same colours, chance as a dotted line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from e2e_recon.experiments.results import CHANCE, RIDGE
from e2e_recon.report.figures import figure_png

# Okabe-Ito (colour-blind safe); the ridge baseline keeps the report's orange.
_PALETTE = ("#0072B2", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8C6D1F", "#000000")
_RIDGE_COLOUR, _CHANCE_COLOUR = "#E69F00", "#7f7f7f"
_STYLE: Any = {
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.alpha": 0.3,
    "font.size": 9,
    "axes.titlesize": 10,
    "legend.fontsize": 8,
    "legend.frameon": False,
}


def identification_metrics(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Pixel identification at native size, then every feature-identification key."""
    keys = list(dict.fromkeys(row["metric"] for row in rows))
    return [k for k in keys if k == "pixid"] + [k for k in keys if "/" in k]


def _lookup(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["condition"], r["set"], r["metric"]): r for r in rows}


def _interval(row: dict[str, Any] | None) -> tuple[float, float, float]:
    """(mean, lower error, upper error); NaN where missing (matplotlib draws nothing)."""
    if row is None or row["mean"] is None:
        return float("nan"), 0.0, 0.0
    mean = float(row["mean"])
    low = mean if row["ci_low"] is None else float(row["ci_low"])
    high = mean if row["ci_high"] is None else float(row["ci_high"])
    return mean, max(mean - low, 0.0), max(high - mean, 0.0)


def ablation_png(rows: Sequence[dict[str, Any]], conditions: Sequence[tuple[str, str]]) -> bytes:
    """Grouped bar chart of the ablation; ``conditions`` are (name, label) in bar order."""
    metrics = identification_metrics(rows)
    sets = list(dict.fromkeys(r["set"] for r in rows))
    labels = {r["metric"]: r["metric_label"] for r in rows}
    table = _lookup(rows)
    groups = [*conditions, (RIDGE, "ridge baseline")]
    colours = [*_PALETTE[: len(conditions)], _RIDGE_COLOUR]
    width = 0.8 / len(groups)
    with plt.rc_context(_STYLE):
        size = (max(6.0, 0.6 + 3.4 * len(metrics)), 4.0)
        fig, axes = plt.subplots(1, len(metrics), figsize=size, squeeze=False, sharey=True)
        for ax, metric in zip(axes[0], metrics, strict=True):
            for g, ((name, label), colour) in enumerate(zip(groups, colours, strict=True)):
                values = np.array([_interval(table.get((name, s, metric))) for s in sets])
                x = np.arange(len(sets)) + (g - (len(groups) - 1) / 2) * width
                ax.bar(
                    x, values[:, 0], width, yerr=values[:, 1:].T, color=colour, label=label,
                    capsize=2, error_kw={"elinewidth": 0.8, "ecolor": "#333333"},
                )  # fmt: skip
            ax.axhline(0.5, color=_CHANCE_COLOUR, linestyle="--", linewidth=1, label="chance")
            ax.set_xticks(np.arange(len(sets)), sets)
            ax.set_ylim(0, 1.05)
            ax.set_title(labels.get(metric, metric))
        axes[0, 0].set_ylabel("identification accuracy")
        handles, names = axes[0, 0].get_legend_handles_labels()
        order = sorted(range(len(names)), key=lambda i: names[i] == "chance")  # chance last
        _legend_on_top(fig, [handles[i] for i in order], bottom_in=0.4)
        return figure_png(fig)


def train_size_png(rows: Sequence[dict[str, Any]]) -> bytes:
    """Identification against training-set size, one panel per test set."""
    metrics = identification_metrics(rows)
    sets = list(dict.fromkeys(r["set"] for r in rows))
    labels = {r["metric"]: r["metric_label"] for r in rows}
    table = _lookup(rows)
    curve = [r for r in rows if r["condition"] not in (RIDGE, CHANCE)]
    sizes = sorted({int(r["n_train_images"]) for r in curve})
    with plt.rc_context(_STYLE):
        size = (max(6.0, 0.6 + 3.6 * len(sets)), 4.0)
        fig, axes = plt.subplots(1, len(sets), figsize=size, squeeze=False, sharey=True)
        for ax, set_name in zip(axes[0], sets, strict=True):
            for m, (metric, colour) in enumerate(zip(metrics, _PALETTE, strict=False)):
                points = sorted(
                    (int(r["n_train_images"]), _interval(r))
                    for r in curve
                    if r["set"] == set_name and r["metric"] == metric
                )
                shift = 2 ** (0.05 * (m - (len(metrics) - 1) / 2))  # keep whiskers apart
                x = [n * shift for n, _ in points]
                values = np.array([v for _, v in points]).reshape(-1, 3)
                ax.errorbar(
                    x, values[:, 0], yerr=values[:, 1:].T, color=colour, marker="o",
                    markersize=4, capsize=2, linewidth=1.4,
                )  # fmt: skip
                ridge = _interval(table.get((RIDGE, set_name, metric)))[0]
                ax.axhline(ridge, color=colour, linestyle="--", linewidth=1, alpha=0.8)
            ax.axhline(0.5, color=_CHANCE_COLOUR, linestyle=":", linewidth=1.2)
            ax.set_xscale("log", base=2)
            ax.set_xticks(sizes, [str(n) for n in sizes])
            ax.minorticks_off()
            ax.set_ylim(0, 1.05)
            ax.set_title(set_name)
            ax.set_xlabel("training images")
        axes[0, 0].set_ylabel("identification accuracy")
        _legend_on_top(fig, _train_size_legend(metrics, labels), bottom_in=0.6)
        return figure_png(fig)


def _legend_on_top(fig: Figure, handles: Sequence[Any], bottom_in: float) -> None:
    """A legend above the panels in as many rows as the width needs; fixed margins."""
    width, height = fig.get_size_inches()
    ncol = max(1, min(len(handles), int(width / 2.0)))
    rows = math.ceil(len(handles) / ncol)
    fig.legend(handles=list(handles), loc="upper center", ncol=ncol)
    top = 1 - (0.45 + 0.2 * rows) / height
    fig.subplots_adjust(
        left=0.6 / width, right=1 - 0.1 / width, top=top, bottom=bottom_in / height, wspace=0.08
    )


def _train_size_legend(metrics: Sequence[str], labels: dict[str, str]) -> list[Line2D]:
    handles = [
        Line2D([], [], color=colour, marker="o", markersize=4, label=labels.get(m, m))
        for m, colour in zip(metrics, _PALETTE, strict=False)
    ]
    handles.append(Line2D([], [], color="#555555", linestyle="--", label="ridge, all images"))
    handles.append(Line2D([], [], color=_CHANCE_COLOUR, linestyle=":", label="chance"))
    return handles
