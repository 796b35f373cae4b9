"""The documentation's demo picture: stimuli, end-to-end and ridge reconstructions of one set.

Reads a finished demo run folder (``e2e-recon demo --out RUN``): the first ``--n`` stimuli
of a test set in ``recon/index.csv`` order, each shown as the networks saw it (resized to the
run's image size and centre-cropped), above the end-to-end and the ridge reconstructions.

Usage: .venv/bin/python benchmarks/demo_grid.py RUN docs/demo_grid.png [--set natural] [--n 10]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from e2e_recon.data.images import center_crop_uint8, load_image

FOLDERS = {"natural": "test", "shapes": "artificial", "letters": "letters"}
TITLES = {"natural": "Natural images", "shapes": "Shapes", "letters": "Letters"}
ROWS = (("stimulus", "Stimulus"), ("e2e", "End-to-end"), ("ridge", "Ridge baseline"))


def grid_images(run: Path, test_set: str, n: int) -> dict[str, list[np.ndarray]]:
    """Per row, ``n`` RGB uint8 images: stimuli as the networks saw them, reconstructions."""
    geometry = json.loads((run / "recon" / "geometry.json").read_text())
    with open(run / "recon" / "index.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["set"] == test_set]
    names = list(dict.fromkeys(r["stimulus_name"] for r in rows))[:n]
    png = {(r["method"], r["stimulus_name"]): r["png"] for r in rows}
    folder = run / "subject" / "images" / FOLDERS[test_set]
    out: dict[str, list[np.ndarray]] = {"stimulus": [], "e2e": [], "ridge": []}
    for name in names:
        path = next(folder.glob(f"{name}.*"))
        image = load_image(path, geometry["image_size_px"])
        out["stimulus"].append(center_crop_uint8(image, geometry["crop_px"]))
        for method in ("e2e", "ridge"):
            out[method].append(np.asarray(Image.open(run / "recon" / png[(method, name)])))
    return out


def draw(images: dict[str, list[np.ndarray]], title: str, path: Path) -> None:
    """Save the grid (rows: stimulus, end-to-end, ridge) as a PNG at ``path``."""
    n = len(images["stimulus"])
    fig, axes = plt.subplots(3, n, figsize=(1.3 * n + 1.0, 4.3), squeeze=False)
    for row, (key, label) in enumerate(ROWS):
        for col in range(n):
            ax = axes[row][col]
            ax.imshow(images[key][col])
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        axes[row][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=11)
    fig.suptitle(f"{title}: stimulus, end-to-end, ridge baseline")
    fig.subplots_adjust(left=0.1, right=0.99, top=0.9, bottom=0.02, wspace=0.04, hspace=0.04)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a finished demo run folder")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--set", dest="test_set", default="natural", choices=sorted(FOLDERS))
    parser.add_argument("--n", type=int, default=10, help="stimuli shown")
    args = parser.parse_args(argv)
    draw(grid_images(args.run, args.test_set, args.n), TITLES[args.test_set], args.out)


if __name__ == "__main__":
    main()
