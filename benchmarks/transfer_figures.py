"""Figures of ``benchmarks/transfer.py``: the learning curves and a grid of reconstructions.

``curves``: from one or more of the benchmark's JSON results (one family each, or several),
one column per family. Top: the new subject's pixel identification against its training
samples, for the adapted generator, ``small`` from scratch and the fair ridge, with the
subject's full-data model as a dashed line. Middle and bottom: the adapted generator minus
the fair ridge on the same samples (pixel and Lite2 head identification) with the 95%
paired intervals, and the goal's margins (+0.05, +0.10) as dotted lines.

``grid``: from one seed's reconstruction folder (``<family>-seed<S>-runs/recon-<N>`` in the
benchmark's work folder) and the experiment's images: ``--n`` natural test stimuli spread
over the test set, as the networks saw them (resized and centre-cropped), above the
fair ridge's, the adapted generator's, ``small``'s from scratch and the full-data model's
reconstructions.

Usage::

    .venv/bin/python benchmarks/transfer_figures.py curves bench/project.json \\
        bench/prf.json --out docs/transfer_curves.png
    .venv/bin/python benchmarks/transfer_figures.py grid bench/project-seed0-runs/recon-300 \\
        bench/project-seed0/images --out docs/transfer_grid.png

``--adapted NAME`` picks the adapted method to show (a variant, e.g. ``adapted-enc``).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from e2e_recon.data.images import center_crop_uint8, load_image
from e2e_recon.fileio import atomic_write_bytes
from e2e_recon.report.figures import figure_png, grid_png

#: Pixel and Lite2 head margins of the goal: ``MARGINS`` of benchmarks/transfer.py, which
#: this script does not import (neither is a package); a test holds the two equal.
GOAL_MARGINS = {"pixid": 0.05, "effnet-lite2/head": 0.10}
METRIC_LABELS = {"pixid": "pixel identification", "effnet-lite2/head": "Lite2 head identification"}
#: Okabe-Ito colours (colour-blind safe), as the experiments' plots use.
COLOURS = {"adapted": "#0072B2", "scratch": "#009E73", "ridge": "#E69F00", "full": "#555555"}
LABELS = {
    "adapted": "adapted",
    "scratch": "small from scratch",
    "ridge": "fair ridge",
    "full": "full-data model",
}
GRID_LABELS = {
    "adapted": "adapted",
    "scratch": "scratch",
    "ridge": "fair ridge",
    "full": "full data",
}
#: The folder of an experiment's natural test images (``e2e-recon simulate``'s layout).
TEST_FOLDER = "test"


def family_results(paths: Sequence[Path]) -> dict[str, dict[str, Any]]:
    """Every family's results in the given JSON files, in the order given."""
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        try:
            families = json.loads(path.read_text())["families"]
        except (OSError, ValueError, KeyError) as error:
            raise SystemExit(f"{path}: not a result of benchmarks/transfer.py ({error})") from None
        out.update(families)
    if not out:
        raise SystemExit("no family in the results given")
    return out


def sizes_of(result: dict[str, Any]) -> list[int]:
    """The new subject's training sample counts of one family's result, ascending."""
    return sorted(int(key.split("_")[1]) for key in result if key.startswith("samples_"))


def curve(result: dict[str, Any], method: str, metric: str = "pixid") -> np.ndarray:
    """``method``'s mean ``metric`` at each size (NaN where it was not run)."""
    means = [result[f"samples_{n}"]["means"].get(method, {}) for n in sizes_of(result)]
    return np.array([m.get(metric, np.nan) for m in means], dtype=float)


def difference(result: dict[str, Any], pair: str, metric: str) -> np.ndarray:
    """``(sizes, 3)``: the paired difference's mean, lower and upper bound at each size."""
    rows = []
    for n in sizes_of(result):
        scores = result[f"samples_{n}"]["paired"].get(pair, {}).get(metric)
        rows.append(
            [np.nan] * 3 if scores is None else [scores[k] for k in ("mean", "ci_low", "ci_high")]
        )
    return np.array(rows, dtype=float)


def curves_png(results: dict[str, dict[str, Any]], adapted: str = "adapted") -> bytes:
    """The learning curves of every family (columns) as PNG bytes."""
    families = list(results)
    fig, axes = plt.subplots(3, len(families), figsize=(3.6 * len(families) + 0.6, 8.2),
                             squeeze=False, sharex="col")  # fmt: skip
    for col, family in enumerate(families):
        result = results[family]
        sizes = sizes_of(result)
        top = axes[0, col]
        for method in ("adapted", "scratch", "ridge"):
            name = adapted if method == "adapted" else method
            top.plot(sizes, curve(result, name), marker="o", color=COLOURS[method],
                     label=LABELS[method])  # fmt: skip
        full = np.nanmean(curve(result, "full"))
        top.axhline(full, color=COLOURS["full"], linestyle="--", label=LABELS["full"])
        top.set_title(family)
        top.set_ylabel("pixel identification" if col == 0 else "")
        for row, metric in enumerate(GOAL_MARGINS, start=1):
            ax = axes[row, col]
            diff = difference(result, f"{adapted} - ridge", metric)
            errors = np.abs(diff[:, 1:] - diff[:, :1]).T  # (2, sizes)
            ax.errorbar(sizes, diff[:, 0], yerr=errors, marker="o", capsize=3,
                        color=COLOURS["adapted"])  # fmt: skip
            ax.axhline(0, color="black", linewidth=0.8)
            ax.axhline(GOAL_MARGINS[metric], color="#CC79A7", linestyle=":",
                       label=f"goal at 300 samples: +{GOAL_MARGINS[metric]:.2f}")  # fmt: skip
            if col == 0:
                ax.set_ylabel(f"adapted - fair ridge,\n{METRIC_LABELS[metric]}")
        axes[2, col].set_xlabel("new subject's training samples")
        for ax in axes[:, col]:
            ax.set_xscale("log")
            ax.set_xticks(sizes, [str(n) for n in sizes])
            ax.minorticks_off()
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, frameon=False)
    axes[1, 0].legend(fontsize=8, frameon=False, loc="upper right")
    fig.suptitle(
        "A new subject adapted from other subjects (mean of the seeds; 95% paired intervals)"
    )
    fig.tight_layout()
    return figure_png(fig)


def grid_rows(recon_dir: Path, images_dir: Path, adapted: str, n: int) -> dict[str, list]:
    """Row label -> images: the stimuli as the networks saw them, then each method's."""
    index = recon_dir / "index.csv"
    if not index.is_file():
        raise SystemExit(f"{index}: not there; give a recon-<N> folder of the benchmark's runs")
    with index.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["set"] == "natural"]
    geometry = json.loads((recon_dir / "geometry.json").read_text())
    every = list(dict.fromkeys(r["stimulus_name"] for r in rows))
    # Spread over the test set: simulated test sets hold several crops of one photo in a row.
    names = [
        every[i] for i in np.linspace(0, len(every) - 1, min(n, len(every))).round().astype(int)
    ]
    png = {(r["method"], r["stimulus_name"]): r["png"] for r in rows}
    out: dict[str, list] = {"stimulus": []}
    for name in names:
        matches = sorted((images_dir / TEST_FOLDER).glob(f"{name}.*"))
        if not matches:
            raise SystemExit(f"{images_dir}: no test image {name}.*; give the experiment's images")
        image = load_image(matches[0], int(geometry["image_size_px"]))
        out["stimulus"].append(center_crop_uint8(image, int(geometry["crop_px"])))
    for method in ("ridge", "adapted", "scratch", "full"):
        name = adapted if method == "adapted" else method
        out[GRID_LABELS[method]] = [_read_png(recon_dir, png.get((name, s))) for s in names]
    return out


def _read_png(recon_dir: Path, relative: str | None) -> np.ndarray | None:
    """A reconstruction's display image, or None where the method lacks it."""
    if not relative:
        return None
    return np.asarray(Image.open(recon_dir / relative).convert("RGB"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figure", choices=("curves", "grid"))
    parser.add_argument("inputs", nargs="+", type=Path,
                        help="curves: result JSON files; grid: RECON_DIR IMAGES_DIR")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--adapted", default="adapted", help="the adapted method to show")
    parser.add_argument("--n", type=int, default=8, help="grid: test stimuli shown")
    parser.add_argument("--title", default="", help="grid: the title")
    args = parser.parse_args(argv)
    if args.figure == "curves":
        png = curves_png(family_results(args.inputs), args.adapted)
    else:
        if len(args.inputs) != 2:
            parser.error("grid takes RECON_DIR IMAGES_DIR")
        rows = grid_rows(args.inputs[0], args.inputs[1], args.adapted, args.n)
        title = args.title or f"{args.inputs[0].name}: the new subject's test images"
        png = grid_png(rows, title, tile_in=0.9)
    atomic_write_bytes(args.out, png)


if __name__ == "__main__":
    main()
