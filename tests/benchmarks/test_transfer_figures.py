"""benchmarks/transfer_figures.py: the curves and the grid, drawn from made-up results."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from load_benchmark import load_benchmark
from PIL import Image

METHODS = ("adapted", "scratch", "ridge", "full")


@pytest.fixture(scope="module")
def figures() -> ModuleType:
    return load_benchmark("transfer_figures.py")


@pytest.fixture(scope="module")
def transfer() -> ModuleType:
    return load_benchmark("transfer.py")


def _result(transfer: ModuleType, shifts: dict[int, float]) -> dict:
    """One family's result: the adapted generator ``shifts[size]`` above the ridge."""
    rng = np.random.default_rng(0)
    out = {}
    for size, shift in shifts.items():
        base = rng.uniform(0.5, 0.8, size=40)
        offsets = {"adapted": shift, "scratch": 0.0, "ridge": 0.0, "full": 0.1}
        pool: dict = {}
        for method, offset in offsets.items():
            for metric in ("pixid", "effnet-lite2/head"):
                values = base + offset + rng.normal(0, 0.01, 40)
                pool.setdefault(method, {})[metric] = {f"0/img{i}": v for i, v in enumerate(values)}
        out[f"samples_{size}"] = {
            "means": transfer.means(pool),
            "paired": transfer.paired(pool, transfer.pairs_of(list(pool))),
        }
    return out


def test_the_curves_read_the_benchmarks_means_and_intervals(
    figures: ModuleType, transfer: ModuleType, tmp_path: Path
) -> None:
    result = _result(transfer, {300: 0.02, 90: 0.08})
    assert figures.sizes_of(result) == [90, 300]
    means = figures.curve(result, "adapted")
    assert means.tolist() == [
        result[f"samples_{n}"]["means"]["adapted"]["pixid"] for n in (90, 300)
    ]
    assert np.isnan(figures.curve(result, "absent")).all()
    diff = figures.difference(result, "adapted - ridge", "pixid")  # (sizes, 3)
    assert diff[:, 0] == pytest.approx([0.08, 0.02], abs=0.01)
    assert (diff[:, 1] < diff[:, 0]).all() and (diff[:, 0] < diff[:, 2]).all()

    for name, family in (("a.json", "project"), ("b.json", "prf")):
        (tmp_path / name).write_text(json.dumps({"families": {family: result}}))
    out = tmp_path / "curves.png"
    figures.main(["curves", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(out)])
    with Image.open(out) as image:  # two families side by side, three rows of panels
        assert image.width > image.height * 0.8 and image.height > 600
    # Written under a temporary name and renamed: nothing but the inputs and the figure.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json", "curves.png"]


def test_the_goal_lines_are_the_benchmarks_margins(
    figures: ModuleType, transfer: ModuleType
) -> None:
    assert figures.GOAL_MARGINS == transfer.MARGINS


def test_a_file_that_is_not_a_result_is_named(figures: ModuleType, tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text("{}")
    with pytest.raises(SystemExit, match=r"other\.json: not a result of benchmarks/transfer\.py"):
        figures.main(["curves", str(other), "--out", str(tmp_path / "x.png")])
    assert not (tmp_path / "x.png").exists()


def _recon_folder(tmp_path: Path, n_images: int) -> tuple[Path, Path]:
    """A recon folder with each method's images one flat colour, and the stimuli."""
    recon, images = tmp_path / "recon-300", tmp_path / "images"
    (images / "test").mkdir(parents=True)
    rows = []
    for i in range(n_images):
        name = f"n{i:02d}"
        Image.new("RGB", (40, 40), (i * 10, 0, 0)).save(images / "test" / f"{name}.png")
        for k, method in enumerate(METHODS):
            rel = f"{method}/natural/{name}.png"
            (recon / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (32, 32), (0, 50 * k, i)).save(recon / rel)
            rows.append({"method": method, "set": "natural", "stimulus_name": name, "png": rel})
    with (recon / "index.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    geometry = {"image_size_px": 36, "crop_px": 32}
    (recon / "geometry.json").write_text(json.dumps(geometry))
    return recon, images


def test_the_grid_spreads_over_the_test_set_and_shows_each_method(
    figures: ModuleType, tmp_path: Path
) -> None:
    recon, images = _recon_folder(tmp_path, n_images=10)
    rows = figures.grid_rows(recon, images, "adapted", n=4)
    assert list(rows) == ["stimulus", "fair ridge", "adapted", "scratch", "full data"]
    # Stimuli 0, 3, 6, 9: the red of the stimulus, the blue channel of each reconstruction.
    assert [int(image[0, 0, 0]) for image in rows["stimulus"]] == [0, 30, 60, 90]
    assert rows["stimulus"][0].shape == (32, 32, 3)  # resized to 36, cropped to 32
    assert [int(image[0, 0, 2]) for image in rows["scratch"]] == [0, 3, 6, 9]
    assert int(rows["adapted"][0][0, 0, 1]) == 0 and int(rows["full data"][0][0, 0, 1]) == 150

    out = tmp_path / "grid.png"
    figures.main(["grid", str(recon), str(images), "--n", "6", "--out", str(out)])
    with Image.open(out) as image:  # six columns, five rows
        assert image.width > image.height > 0


def test_a_variant_without_images_leaves_its_row_empty(figures: ModuleType, tmp_path: Path) -> None:
    recon, images = _recon_folder(tmp_path, n_images=3)
    rows = figures.grid_rows(recon, images, "adapted-enc", n=3)
    assert rows["adapted"] == [None, None, None] and rows["scratch"][0] is not None
    with pytest.raises(SystemExit, match="no test image n00"):
        figures.grid_rows(recon, tmp_path / "elsewhere", "adapted", n=3)
