"""Paired comparisons of two methods on one test set: per-image differences.

Two methods scored on the same images are compared image by image: for each
metric, the difference (method minus baseline) of every image's score, its mean
with a percentile bootstrap interval over images (resampling images, so each
resample keeps the pairs together), and the share of images on which the
method scores higher. A method "beats" its baseline on a metric only where the
interval excludes 0. Unpaired intervals of the two means overlap far more
often than paired ones, because the images' difficulty is shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from rich.table import Table

from e2e_recon.evaluate.metrics import bootstrap_ci, json_number

#: Scores per (set, method): the stimulus names in order, and {metric key: (N,) values}.
MethodScores = Mapping[tuple[str, str], tuple[tuple[str, ...], Mapping[str, np.ndarray]]]


def is_baseline(method: str) -> bool:
    """Methods compared against: the ridge decoder (``ridge``, ``ridge-*``)."""
    return method.startswith("ridge")


def paired_difference(
    first: np.ndarray, second: np.ndarray, n_boot: int = 1000, ci: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """Mean per-image difference ``first - second`` with a paired bootstrap interval.

    Parameters
    ----------
    first, second : ndarray, shape (N,)
        One score per image, same image order; images where either is NaN are
        left out.

    Returns
    -------
    dict
        ``mean``, ``ci_low``, ``ci_high`` (None when undefined), ``wins`` (share
        of images where ``first`` is higher), ``ties``, ``n_images`` and
        ``excludes_zero`` (the interval lies entirely above or below 0).
    """
    a, b = np.asarray(first, np.float64), np.asarray(second, np.float64)
    keep = ~(np.isnan(a) | np.isnan(b))
    diff = a[keep] - b[keep]  # (n,)
    if diff.size == 0:
        return {"mean": None, "ci_low": None, "ci_high": None, "wins": None, "ties": None,
                "n_images": 0, "excludes_zero": False}  # fmt: skip
    low, high = bootstrap_ci(diff, n_boot=n_boot, ci=ci, seed=seed)
    return {
        "mean": json_number(float(diff.mean())),
        "ci_low": json_number(low),
        "ci_high": json_number(high),
        "wins": json_number(float(np.mean(diff > 0))),
        "ties": json_number(float(np.mean(diff == 0))),
        "n_images": int(diff.size),
        "excludes_zero": bool(low > 0 or high < 0),
    }


def paired_comparisons(
    scores: MethodScores, n_boot: int = 1000, ci: float = 0.95, seed: int = 0
) -> list[dict[str, Any]]:
    """Every method against every baseline of the same set, paired by stimulus.

    Returns
    -------
    list of dict
        One entry per (set, method, baseline): ``set``, ``method``, ``baseline``,
        ``n_images`` and ``scores`` ({metric key: :func:`paired_difference`}).
    """
    out = []
    for (set_name, method), (names, method_scores) in scores.items():
        if is_baseline(method):
            continue
        for (other_set, baseline), (base_names, base_scores) in scores.items():
            if other_set != set_name or not is_baseline(baseline):
                continue
            order = _alignment(names, base_names)
            if order is None:
                continue
            paired = {
                key: paired_difference(values, base_scores[key][order], n_boot, ci, seed)
                for key, values in method_scores.items()
                if key in base_scores
            }
            out.append(
                {"set": set_name, "method": method, "baseline": baseline,
                 "n_images": len(names), "scores": paired}
            )  # fmt: skip
    return out


def _alignment(names: tuple[str, ...], base_names: tuple[str, ...]) -> np.ndarray | None:
    """Indices into ``base_names`` that follow ``names``; None if the images differ."""
    if sorted(names) != sorted(base_names):
        return None
    where = {name: i for i, name in enumerate(base_names)}
    return np.array([where[name] for name in names], dtype=np.int64)


def comparisons_table(result: Mapping[str, Any]) -> Table | None:
    """Rich table of ``result["comparisons"]``: mean difference [interval], share of wins.

    A bold cell is a difference whose interval excludes 0. None when there is
    nothing to compare.
    """
    comparisons = result.get("comparisons") or []
    if not comparisons:
        return None
    ci = result["settings"]["bootstrap"]["ci"]
    table = Table(
        title=f"Paired differences per image, mean [{ci:.0%} paired bootstrap interval] "
        "and share of images won",
        caption="bold: the interval excludes 0",
    )
    table.add_column("Set")
    table.add_column("Comparison")
    for metric in result["metrics"]:
        table.add_column(metric["label"], justify="right")
    for row in comparisons:
        cells = [_cell(row["scores"].get(m["key"])) for m in result["metrics"]]
        table.add_row(row["set"], f"{row['method']} - {row['baseline']}", *cells)
    return table


def _cell(score: Mapping[str, Any] | None) -> str:
    if not score or score["mean"] is None:
        return "-"
    text = f"{score['mean']:+.3f}"
    if score["ci_low"] is not None and score["ci_high"] is not None:
        text += f" [{score['ci_low']:+.2f}, {score['ci_high']:+.2f}]"
    text += f" {score['wins']:.0%}"
    return f"[bold]{text}[/]" if score["excludes_zero"] else text
