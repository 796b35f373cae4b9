"""Pictures for the report: training curves, metric over snapshots, image grids.

Everything here returns PNG bytes (or writes a PNG) so that the page can embed
it; matplotlib runs on its non-interactive Agg backend, so no display is needed.
"""

from __future__ import annotations

import base64
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from PIL import Image

# Colours shared by the plots and the page (colour-blind safe, Okabe-Ito).
METHOD_COLOURS = {"e2e": "#0072B2", "ridge": "#E69F00", "chance": "#7f7f7f"}
_PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8C6D1F", "#000000"]
_STYLE: Any = {  # matplotlib types keys as literals; a plain dict is fine at run time
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 9,
    "axes.titlesize": 10,
    "legend.fontsize": 8,
    "legend.frameon": True,  # legends often sit over curves: a light box keeps them readable
    "legend.framealpha": 0.85,
    "legend.edgecolor": "#dddddd",
}


# --------------------------------------------------------------------------------------------
# PNG helpers
# --------------------------------------------------------------------------------------------


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 image, shape (H, W, 3)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` URI so the page needs no side files."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it.

    The layout is set by the caller with fixed margins: ``tight_layout`` and
    ``bbox_inches="tight"`` would each draw the figure once more, tripling the cost.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    plt.close(fig)
    return buffer.getvalue()


def thumbnail(rgb: np.ndarray, max_px: int) -> np.ndarray:
    """Shrink an RGB uint8 image (H, W, 3) so its longer side is at most ``max_px``."""
    height, width = rgb.shape[:2]
    scale = max_px / max(height, width)
    if scale >= 1.0:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, resample=Image.Resampling.LANCZOS))


# --------------------------------------------------------------------------------------------
# Training curves (stats.jsonl)
# --------------------------------------------------------------------------------------------


@dataclass
class CurveGroup:
    """Keys of stats.jsonl plotted together in one panel."""

    title: str
    keys: list[str] = field(default_factory=list)
    log_scale: bool = False
    kind: str = "line"  # "line" or "fraction" (booleans as a rolling fraction of iterations)


_NOT_CURVES = ("iteration", "iter", "time")  # x axis and wall-clock stamps, not curves


def iteration_of(record: Mapping[str, object], default: int) -> float:
    """Iteration of a stats row (``iteration``, or ``iter`` in older files; else ``default``)."""
    for key in ("iteration", "iter"):
        value = record.get(key)
        if isinstance(value, int | float):
            return float(value)
    return float(default)


def numeric_keys(records: Sequence[Mapping[str, object]]) -> list[str]:
    """Keys holding numbers or booleans in any record, in first-seen order (not the x axis)."""
    keys: dict[str, None] = {}
    for record in records:
        for key, value in record.items():
            if key not in _NOT_CURVES and isinstance(value, int | float) and key not in keys:
                keys[key] = None
    return list(keys)


# Substrings that mark a count (an iteration number, a number of validations): counts get
# their own panel, never the axis of values between 0 and 1.
_COUNT_WORDS = ("iteration", "iter", "step", "epoch", "count", "validations", "evaluations")

# Substrings that mark a training loss: the trainer logs "loss_g", "loss_d_real", ... and the
# generator's unweighted terms under their bare names ("image", "feature", "adversarial").
_LOSS_WORDS = ("loss", "image", "feature", "adversarial", "adv", "d_real", "d_fake")


def group_stat_keys(keys: Sequence[str]) -> list[CurveGroup]:
    """Sort logged keys into panels: losses, balance state, validation, learning rate, other.

    Training losses share a log-scale panel; the balance state (``train_d``, ``train_g``)
    is shown as the fraction of iterations each network trained; validation metrics,
    validation losses and validation counts (``val_best_iteration``) get their own panels
    because their scales differ.
    """
    losses = CurveGroup("Training losses", log_scale=True)
    balance = CurveGroup("Balance state: fraction of iterations training", kind="fraction")
    ratio = CurveGroup("Balance ratio", log_scale=True)
    val_metrics = CurveGroup("Validation metrics")
    val_losses = CurveGroup("Validation losses", log_scale=True)
    val_counts = CurveGroup("Validation: iterations and counts")
    rate = CurveGroup("Learning rate", log_scale=True)
    other = CurveGroup("Other logged values")
    for key in keys:
        lower = key.lower()
        if lower.startswith("val") and any(word in lower for word in _COUNT_WORDS):
            val_counts.keys.append(key)
        elif lower.startswith("val"):
            (val_losses if "loss" in lower else val_metrics).keys.append(key)
        elif lower in ("train_d", "train_g") or lower.startswith("balance_state"):
            balance.keys.append(key)
        elif "ratio" in lower or "balance" in lower:
            ratio.keys.append(key)
        elif any(word in lower for word in _LOSS_WORDS):
            losses.keys.append(key)
        elif lower == "lr" or lower.startswith(("lr_", "lr/", "learning_rate")):
            rate.keys.append(key)
        else:
            other.keys.append(key)
    groups = [losses, balance, ratio, val_metrics, val_losses, val_counts, rate, other]
    return [g for g in groups if g.keys]


def constant_values(records: Sequence[Mapping[str, object]]) -> dict[str, float]:
    """Logged keys whose value never changes in the run (a plot of them shows nothing)."""
    out: dict[str, float] = {}
    for key in numeric_keys(records):
        _, ys = _series(records, key)
        if ys.size and bool(np.all(ys == ys[0])):
            out[key] = float(ys[0])
    return out


def constant_values_text(records: Sequence[Mapping[str, object]]) -> str | None:
    """One line naming the values that never changed (not plotted), or None."""
    constants = constant_values(records)
    if not constants:
        return None
    values = ", ".join(f"{key} = {value:.4g}" for key, value in constants.items())
    return f"Constant throughout the run, so not plotted: {values}."


def _series(records: Sequence[Mapping[str, object]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(iterations, values) of the records that have a finite number under ``key``."""
    xs, ys = [], []
    for index, record in enumerate(records):
        value = record.get(key)
        if isinstance(value, int | float) and math.isfinite(float(value)):
            xs.append(iteration_of(record, index))
            ys.append(float(value))
    return np.asarray(xs), np.asarray(ys)


def _rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` samples (shorter at the start)."""
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(idx - window, 0)
    return (cumulative[idx] - cumulative[start]) / (idx - start)


def _wide_range(ax: plt.Axes) -> bool:
    """Whether the plotted values span more than a factor of 20 (worth a log axis)."""
    values = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]
    values = [v[v > 0] for v in values if v.size]
    if not any(v.size for v in values):
        return False
    joined = np.concatenate(values)
    return bool(joined.max() > 20 * joined.min())


def _plain_linear_axis(ax: plt.Axes) -> None:
    """No "1e-16+2e-4" offset labels; a constant curve gets a +-10% range around it."""
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.4g}"))
    low, high = ax.get_ylim()
    middle = (low + high) / 2
    if high - low <= 1e-9 * max(abs(middle), 1e-30):
        ax.set_ylim(middle - 0.1 * abs(middle) - 1e-12, middle + 0.1 * abs(middle) + 1e-12)


def _plot_group(ax: plt.Axes, records: Sequence[Mapping[str, object]], group: CurveGroup) -> None:
    for colour, key in zip(_PALETTE * 4, group.keys, strict=False):
        xs, ys = _series(records, key)
        if group.log_scale:
            keep = ys > 0  # zero or negative values cannot be shown on a log axis
            xs, ys = xs[keep], ys[keep]
        if len(xs) == 0:
            continue
        if group.kind == "fraction":
            window = max(1, len(ys) // 40)
            ax.plot(xs, _rolling_mean(ys, window), color=colour, label=key, lw=1.4)
            ax.set_ylim(-0.05, 1.05)
        elif len(ys) > 60:  # noisy GAN losses: faint raw curve under a smoothed one
            ax.plot(xs, ys, color=colour, alpha=0.25, lw=0.7)
            ax.plot(xs, _rolling_mean(ys, max(2, len(ys) // 30)), color=colour, label=key, lw=1.4)
        else:
            ax.plot(xs, ys, color=colour, label=key, lw=1.4, marker="." if len(ys) < 30 else None)
    if group.log_scale and _wide_range(ax):
        ax.set_yscale("log")
    elif group.kind != "fraction":
        _plain_linear_axis(ax)
    ax.set_title(group.title)
    ax.set_xlabel("iteration")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", ncols=2 if len(group.keys) > 4 else 1)


def training_curves_png(records: Sequence[Mapping[str, object]]) -> bytes | None:
    """One figure with a panel per group of logged keys that change; None when none does.

    Keys whose value never changes (:func:`constant_values`: the balance ratio and the
    learning rates of a run without the adversarial term) are left out: the page says
    them in one line (:func:`constant_values_text`).
    """
    constants = constant_values(records)
    groups = group_stat_keys([k for k in numeric_keys(records) if k not in constants])
    if not groups:
        return None
    columns = 2 if len(groups) > 1 else 1
    rows = math.ceil(len(groups) / columns)
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(rows, columns, figsize=(11, 3.3 * rows), squeeze=False)
        for ax, group in zip(axes.flat, groups, strict=False):
            _plot_group(ax, records, group)
        for ax in list(axes.flat)[len(groups) :]:
            ax.set_visible(False)
        height = 3.3 * rows
        fig.subplots_adjust(
            left=0.07,
            right=0.98,
            top=1 - 0.35 / height,
            bottom=0.5 / height,
            hspace=0.5,
            wspace=0.18,
        )
        return figure_png(fig)


# --------------------------------------------------------------------------------------------
# Metric over snapshots
# --------------------------------------------------------------------------------------------

_SNAPSHOT = re.compile(r"@(?:iter)?_?(\d+)")


def snapshot_iteration(method: str) -> int | None:
    """Iteration of a snapshot method name such as ``e2e@iter010000`` (None otherwise)."""
    match = _SNAPSHOT.search(method)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class SnapshotPoint:
    """One metric value of one snapshot, with its interval when known."""

    iteration: int
    value: float
    low: float | None = None
    high: float | None = None


def snapshot_metric_png(
    points: Mapping[str, Sequence[SnapshotPoint]],
    references: Mapping[str, Mapping[str, float]],
    metric_label: str,
) -> bytes:
    """Metric of each snapshot per test set, with horizontal lines for ridge and chance.

    Parameters
    ----------
    points : mapping set name -> snapshot points
    references : mapping set name -> {"ridge": value, "chance": value} (either may be absent)
    metric_label : str
        Axis label, e.g. "Pixel identification".
    """
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(8, 3.6))
        for colour, (set_name, series) in zip(_PALETTE, points.items(), strict=False):
            ordered = sorted(series, key=lambda p: p.iteration)
            xs = [p.iteration for p in ordered]
            ax.plot(xs, [p.value for p in ordered], color=colour, marker="o", label=set_name)
            if all(p.low is not None and p.high is not None for p in ordered):
                lows = [float(p.low) for p in ordered if p.low is not None]
                highs = [float(p.high) for p in ordered if p.high is not None]
                ax.fill_between(xs, lows, highs, color=colour, alpha=0.15, lw=0)
            for method, style in (("ridge", "--"), ("chance", ":")):
                value = references.get(set_name, {}).get(method)
                if value is not None:
                    ax.axhline(value, color=colour, ls=style, lw=1, alpha=0.8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("iteration of the snapshot")
        ax.set_ylabel(metric_label)
        ax.set_title(f"{metric_label} over snapshots (dashed: ridge, dotted: chance)")
        ax.legend(loc="best")
        fig.subplots_adjust(left=0.09, right=0.98, top=0.9, bottom=0.14)
        return figure_png(fig)


# --------------------------------------------------------------------------------------------
# Stand-alone image grid (for the README)
# --------------------------------------------------------------------------------------------


def grid_png(
    rows: Mapping[str, Sequence[np.ndarray | None]], title: str, tile_in: float = 1.1
) -> bytes:
    """A labelled grid: one row per label (stimulus, reconstructions), one column per image.

    Parameters
    ----------
    rows : mapping row label -> images (H, W, 3) uint8 RGB, None for a missing image
    title : str
    tile_in : float
        Width of one tile in inches.
    """
    n_rows = len(rows)
    n_cols = max((len(images) for images in rows.values()), default=0)
    if n_rows == 0 or n_cols == 0:
        raise ValueError("grid_png needs at least one row and one image")
    # Margins in inches so that labels fit and tiles stay square whatever the counts.
    left, right, top, bottom, gap = 1.3, 0.05, 0.45, 0.05, 0.04 * tile_in
    width = left + right + n_cols * tile_in + (n_cols - 1) * gap
    height = top + bottom + n_rows * tile_in + (n_rows - 1) * gap
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(width, height), squeeze=False)
        fig.subplots_adjust(
            left=left / width,
            right=1 - right / width,
            top=1 - top / height,
            bottom=bottom / height,
            wspace=gap / tile_in,
            hspace=gap / tile_in,
        )
        for r, (label, images) in enumerate(rows.items()):
            for c in range(n_cols):
                ax = axes[r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                for spine in ax.spines.values():
                    spine.set_visible(False)
                image = images[c] if c < len(images) else None
                if image is not None:
                    ax.imshow(image, interpolation="lanczos")
                if c == 0:
                    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
        fig.suptitle(title, fontsize=11, y=1 - 0.12 / height, va="top")
        return figure_png(fig, dpi=110)
