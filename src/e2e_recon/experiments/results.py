"""An experiment's results: one long table (condition x set x metric), files, terminal table.

Rows come from each condition's ``metrics.json``: the end-to-end model of every
condition, the ridge baseline and the chance level of the reference (full-data,
all-losses) run. ``results.csv`` holds the rows; ``results.json`` the same rows
with the conditions, evaluation settings and base config.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from e2e_recon.config import to_dict
from e2e_recon.console_output import print_table
from e2e_recon.experiments.common import Condition, ConditionResult, Experiment
from e2e_recon.fileio import atomic_write_bytes

RESULTS_FORMAT = "e2e-recon/experiment"
CSV_COLUMNS = (
    "condition", "condition_label", "n_train_images", "method", "set", "metric", "metric_label",
    "mean", "ci_low", "ci_high", "n_images", "run_dir",
)  # fmt: skip
RIDGE, CHANCE = "ridge", "chance"


def result_rows(experiment: Experiment, results: Sequence[ConditionResult]) -> list[dict]:
    """Long-format rows, ordered by condition (ridge and chance last), then set, then metric."""
    rows: list[dict[str, Any]] = []
    for result in results:
        labels = {m["key"]: m["label"] for m in result.metrics.get("metrics", [])}
        run_dir = result.run_dir.relative_to(experiment.folder).as_posix()
        for entry in result.metrics.get("results", []):
            who = _row_identity(result, entry["method"])
            if who is None:
                continue
            for metric, score in entry["scores"].items():
                rows.append(
                    {
                        **who,
                        "set": entry["set"],
                        "metric": metric,
                        "metric_label": labels.get(metric, metric),
                        **{k: score.get(k) for k in ("mean", "ci_low", "ci_high")},
                        "n_images": entry.get("n_images"),
                        "run_dir": run_dir,
                    }
                )
    conditions = [r.condition.name for r in results] + [RIDGE, CHANCE]
    sets = list(dict.fromkeys(row["set"] for row in rows))
    rows.sort(key=lambda r: (conditions.index(r["condition"]), sets.index(r["set"])))
    return rows


def _row_identity(result: ConditionResult, method: str) -> dict[str, Any] | None:
    """Condition columns of a metrics.json method; None for methods that are not reported."""
    condition = result.condition
    if method == "e2e":
        return {
            "condition": condition.name,
            "condition_label": condition.label,
            "n_train_images": condition.n_train_images,
            "method": method,
        }
    if method == RIDGE and condition.ridge:
        return {
            "condition": RIDGE,
            "condition_label": _ridge_label(condition),
            "n_train_images": condition.n_train_images,
            "method": method,
        }
    if method == CHANCE and condition.ridge:
        return {
            "condition": CHANCE,
            "condition_label": "chance",
            "n_train_images": None,
            "method": method,
        }
    return None


def _ridge_label(condition: Condition) -> str:
    n = condition.n_train_images
    return "ridge baseline" if n is None else f"ridge baseline ({n} images)"


def write_results(
    experiment: Experiment,
    results: Sequence[ConditionResult],
    rows: list[dict[str, Any]],
    plot_name: str,
) -> dict[str, Any]:
    """Write ``results.csv`` and ``results.json`` atomically; return the JSON content."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if row[k] is None else row[k] for k in CSV_COLUMNS} for row in rows)
    atomic_write_bytes(experiment.folder / "results.csv", buffer.getvalue().encode())
    first = results[0].metrics if results else {}
    content = {
        "format": RESULTS_FORMAT,
        "version": 1,
        "kind": experiment.kind,
        "seed": experiment.seed,
        "wall_s": round(time.perf_counter() - experiment.started, 1),
        "conditions": [_condition_entry(experiment, r) for r in results],
        "metrics": first.get("metrics", []),
        "feature_networks": first.get("feature_networks", []),
        "evaluation_settings": first.get("settings", {}),
        "subject": experiment.subject,
        "base_config": to_dict(experiment.cfg),
        "files": {"csv": "results.csv", "plot": plot_name},
        "rows": rows,
    }
    text = json.dumps(content, indent=2, default=str) + "\n"
    atomic_write_bytes(experiment.folder / "results.json", text.encode())
    return content


def conclude(
    experiment: Experiment,
    results: Sequence[ConditionResult],
    rows: list[dict[str, Any]],
    plot: tuple[str, bytes],
    console: Console,
) -> Path:
    """Write the plot, ``results.csv`` and ``results.json``; print the table; return the folder."""
    plot_name, png = plot
    atomic_write_bytes(experiment.folder / plot_name, png)
    content = write_results(experiment, results, rows, plot_name)
    title = "Loss ablation" if experiment.kind == "ablation" else "Training-set size"
    print_table(console, results_table(content, title))
    for name in ("results.csv", "results.json", plot_name):
        console.print(f"wrote {experiment.folder / name}")
    return experiment.folder


def _condition_entry(experiment: Experiment, result: ConditionResult) -> dict[str, Any]:
    condition, train = result.condition, result.train_summary
    return {
        "name": condition.name,
        "label": condition.label,
        "overrides": list(condition.overrides),
        "n_train_images": condition.n_train_images,
        "reference": condition.ridge,
        "run_dir": result.run_dir.relative_to(experiment.folder).as_posix(),
        "iterations": train.get("iterations"),
        "train_seconds": train.get("seconds"),
        "seconds": round(result.seconds, 1),
    }


def results_table(content: dict[str, Any], title: str) -> Table:
    """Terminal table: one line per (condition, set), a column per metric, mean [interval]."""
    rows: list[dict[str, Any]] = content["rows"]
    metrics = list(dict.fromkeys(row["metric"] for row in rows))
    labels = {row["metric"]: row["metric_label"] for row in rows}
    ci = content.get("evaluation_settings", {}).get("bootstrap", {}).get("ci", 0.95)
    table = Table(title=f"{title}, mean [{ci:.0%} bootstrap interval]; chance 0.50 for ident.")
    nets = "; ".join(f"{n['label']}: {n['weights']}" for n in content.get("feature_networks", []))
    if nets:
        table.caption = f"Feature identification with {nets}"
    for column in ("Condition", "Set"):
        table.add_column(column)
    for metric in metrics:
        table.add_column(labels[metric], justify="right")
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        cells.setdefault((row["condition_label"], row["set"]), {})[row["metric"]] = row
    previous = None
    for (label, set_name), by_metric in cells.items():
        if previous is not None and label != previous:
            table.add_section()
        previous = label
        table.add_row(
            label,
            set_name,
            *(_cell(by_metric.get(m)) for m in metrics),
            style="dim" if label == CHANCE else None,
        )
    return table


def _cell(row: dict[str, Any] | None) -> str:
    if row is None or row["mean"] is None:
        return "-"
    if row["ci_low"] is None or row["ci_high"] is None:
        return f"{row['mean']:.3f}"
    return f"{row['mean']:.3f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
