"""Reading what a run directory holds, for the report: settings, data origin, grids, metrics.

Every reader here tolerates missing or partial files (a run that stopped early, a
folder copied without its data): it returns what it can plus notes for the page.

The metrics file is read by :mod:`e2e_recon.report.metrics_file`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from e2e_recon.config import Config, to_dict
from e2e_recon.data.images import center_crop_uint8, display_image, grey_uint8, load_image
from e2e_recon.data.labels import IMAGE_SUFFIXES
from e2e_recon.errors import DataError
from e2e_recon.fileio import path_inside
from e2e_recon.report.figures import snapshot_iteration, thumbnail
from e2e_recon.report.subject import subject_statement

SET_ORDER = ("natural", "shapes", "letters")
_PATH_COLUMNS = ("mat", "tif", "png")  # of index.csv, relative to recon/
THUMBNAIL_PX = 112  # embedded size: sharp at the 90 px shown, and a paper-sized page stays small


# --------------------------------------------------------------------------------------------
# Small readers
# --------------------------------------------------------------------------------------------


def read_json(path: Path) -> Any | None:
    """Parsed JSON of ``path``, or None when it is missing or not valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_stats_rows(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Rows of ``stats.jsonl`` (nested dicts flattened as ``outer/inner``) and the count of
    unreadable lines (a torn last line after a crash, for example)."""
    rows: list[dict[str, Any]] = []
    skipped = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            skipped += 1
            continue
        if not isinstance(row, dict):
            skipped += 1
            continue
        flat: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, dict):
                flat.update({f"{key}/{k}": v for k, v in value.items()})
            else:
                flat[key] = value
        rows.append(flat)
    return rows, skipped


def run_settings(run_dir: Path) -> dict[str, Any]:
    """The run's config as a nested dict, with defaults for keys its config.yaml lacks.

    Read as plain YAML rather than validated, so that a config from another version of
    the package still gives a report.
    """
    merged = to_dict(Config())
    try:
        raw = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        raw = {}
    for section, values in raw.items() if isinstance(raw, dict) else ():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section].update(values)
        else:
            merged[section] = values
    return merged


def resolve_path(text: str | Path | None, run_dir: Path) -> Path | None:
    """An existing path named in the run's files: as given, or relative to the run, its
    parent or grandparent folder (configs often hold paths relative to where the command
    ran, e.g. ``runs/00000-sim-demo/subject`` from the folder holding ``runs/``)."""
    if not text:
        return None
    path = Path(text).expanduser()
    candidates = (
        [path]
        if path.is_absolute()
        else [path, run_dir / path, run_dir.parent / path, run_dir.parent.parent / path]
    )
    return next((p for p in candidates if p.exists()), None)


# --------------------------------------------------------------------------------------------
# Data statement
# --------------------------------------------------------------------------------------------


@dataclass
class DataStatement:
    """What the page says about the data and the comparator."""

    kind: str  # "simulated", "real" or "unknown"
    kind_text: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    comparator_text: str = ""
    comparator_random: bool = False
    extra: list[tuple[str, str]] = field(default_factory=list)


def data_statement(run_dir: Path, settings: Mapping[str, Any]) -> DataStatement:
    """Say which data the run used (simulated or recorded) and which comparator weights."""
    data = settings.get("data", {})
    summary = read_json(run_dir / "summary.json")
    summary = summary if isinstance(summary, dict) else {}
    named = [data.get("train_fmri"), *(data.get("test_fmri") or []), data.get("images_dir")]
    found = [p for p in (resolve_path(t, run_dir) for t in named) if p is not None]
    truth = _truth_dir(found)
    simulated = _summary_says_simulated(summary)
    if simulated or truth is not None:
        kind, text = "simulated", "Simulated subject (made by e2e-recon simulate)"
    elif simulated is False or found:
        kind, text = "real", "Recorded fMRI data (no simulation ground truth beside the files)"
    else:
        kind, text = "unknown", "The data files named in config.yaml were not found"
    facts = [("Subject", subject_statement(data).text)]
    facts += [("Training data", str(data.get("train_fmri") or "(not set)"))]
    facts += [("Test data", "\n".join(str(t) for t in data.get("test_fmri") or []) or "(not set)")]
    facts += [("Stimulus images", str(data.get("images_dir") or "(not set)"))]
    facts += [("Voxels", str(data.get("roi", "")))]
    if truth is not None:
        facts += _truth_facts(truth)
    label, random = comparator_label(settings, summary)
    network = str(settings.get("eval", {}).get("feature_network", ""))
    extra = [("Evaluation network", f"{network} (configured)")] if network else []
    for key, name in (
        ("seed", "Seed"),
        ("wall_s", "Wall time (s)"),
        ("peak_rss_mb", "Peak RSS (MB)"),
    ):
        if isinstance(summary.get(key), int | float):
            extra.append((name, f"{summary[key]:g}"))
    return DataStatement(kind, text, facts, label, random, extra)


def _summary_says_simulated(summary: Mapping[str, Any]) -> bool | None:
    for key in ("simulated", "is_simulated"):
        if isinstance(summary.get(key), bool):
            return bool(summary[key])
    for key in ("data", "data_kind", "dataset", "subject"):
        value = summary.get(key)
        if isinstance(value, dict) and isinstance(value.get("simulated"), bool):
            return bool(value["simulated"])
        if isinstance(value, str) and "simulat" in value.lower():
            return True
    subject = summary.get("subject")
    if isinstance(subject, dict) and ("truth_dir" in subject or "preset" in subject):
        return True  # the demo's summary holds the simulated subject's own summary
    return True if isinstance(summary.get("sim"), dict) else None


def _truth_dir(paths: Iterable[Path]) -> Path | None:
    """``DIR/truth`` of a simulated subject, found from its ``DIR/fmri/*.h5`` or ``DIR/images``."""
    for path in paths:
        for parent in list(path.parents)[:3]:
            if (parent / "truth").is_dir():
                return parent / "truth"
    return None


_TRUTH_FACTS = {  # key of truth/summary.json -> label on the page
    "preset": "Simulation preset",
    "seed": "Simulation seed",
    "snr": "Single-trial SNR",
    "n_voxels": "Simulated voxels",
    "image_size_px": "Stimulus size (px)",
    "ridge_pairwise_identification": "Ridge calibration (pixel identification)",
}


def _truth_facts(truth: Path) -> list[tuple[str, str]]:
    """Settings of the simulated subject from its ground-truth ``truth/summary.json``."""
    content = read_json(truth / "summary.json")
    if not isinstance(content, dict):
        return []
    facts = []
    for key, label in _TRUTH_FACTS.items():
        value = content.get(key)
        if isinstance(value, float):
            facts.append((label, f"{value:.3g}"))
        elif isinstance(value, int | str):
            facts.append((label, str(value)))
    return facts


def comparator_label(settings: Mapping[str, Any], summary: Mapping[str, Any]) -> tuple[str, bool]:
    """Human-readable comparator weights and whether they are random (untrained)."""
    model = settings.get("model", {})
    kind = str(model.get("comparator", ""))
    path = str(model.get("comparator_path") or "")
    known = {
        "caffenet": f"CaffeNet, pretrained weights from {path or 'the data home'}",
        "alexnet": f"AlexNet, torchvision ImageNet weights from {path or 'the data home'}",
        "random-caffenet": "CaffeNet architecture with RANDOM (untrained) weights: "
        "no pretrained network was used for the feature loss",
        "efficientnet-lite0": "EfficientNet-Lite0, ImageNet weights (installed package)",
        "efficientnet-lite2": "EfficientNet-Lite2, ImageNet weights (installed package)",
    }
    text = known.get(kind, kind or "(not set)")
    stated = summary.get("comparator")
    if isinstance(stated, dict):
        stated = stated.get("weights") or stated.get("weights_label") or stated.get("label")
    if isinstance(stated, str) and stated and stated != kind:  # a weights label, not the kind
        text = stated
    layers = ", ".join(str(x) for x in model.get("feature_layers") or [])
    text += f"; feature layers: {layers}" if layers else ""
    weight = settings.get("loss", {}).get("feature_weight")
    if isinstance(weight, int | float) and weight == 0:
        text += " (feature loss off: weight 0)"
    return text, "random" in kind.lower() or "random" in text.lower()


# --------------------------------------------------------------------------------------------
# Image grids (recon/index.csv + stimulus images)
# --------------------------------------------------------------------------------------------


@dataclass
class GridData:
    """One test set's images: column names and a row of images per label (None = missing)."""

    names: list[str]
    rows: dict[str, list[np.ndarray | None]]
    notes: list[str] = field(default_factory=list)
    scores: dict[str, list[float | None]] = field(default_factory=dict)  # row label -> pixid


def load_grid(
    run_dir: Path,
    settings: Mapping[str, Any],
    max_images: int | None = None,
    sets: Sequence[str] | None = None,
) -> dict[str, GridData]:
    """Stimulus, end-to-end and ridge images of each test set, in the index's order."""
    recon_dir = run_dir / "recon"
    index_path = recon_dir / "index.csv"
    if not index_path.is_file():
        return {}
    with index_path.open(newline="", encoding="utf-8") as f:
        index = [r for r in csv.DictReader(f) if r.get("set") and r.get("method")]
    images_dir = _images_dir(run_dir, settings)
    lookup = _image_lookup(images_dir) if images_dir is not None else {}
    scores = _per_image_scores(recon_dir / "per_image.csv")
    grids: dict[str, GridData] = {}
    for set_name in ordered_sets({r["set"] for r in index}):
        if sets is not None and set_name not in sets:
            continue
        rows = [r for r in index if r["set"] == set_name]
        grid = grids[set_name] = _set_grid(recon_dir, rows, lookup, settings, max_images)
        for method in _grid_methods({r["method"] for r in rows}):
            grid.scores[method_title(method)] = [
                scores.get((set_name, method, name)) for name in grid.names
            ]
        if images_dir is None:
            grids[set_name].notes.append("Stimulus images not found (set data.images_dir).")
    return grids


def _per_image_scores(path: Path) -> dict[tuple[str, str, str], float | None]:
    """(set, method, stimulus) -> pixel identification, from the evaluation's per_image.csv."""
    if not path.is_file():
        return {}
    scores: dict[tuple[str, str, str], float | None] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                value: float | None = float(row.get("pixid") or "nan")
            except ValueError:
                value = None
            key = (row.get("set", ""), row.get("method", ""), row.get("stimulus_name", ""))
            scores[key] = value if value is not None and value == value else None  # NaN -> None
    return scores


def _set_grid(
    recon_dir: Path,
    rows: list[dict[str, str]],
    lookup: Mapping[str, Path],
    settings: Mapping[str, Any],
    max_images: int | None,
) -> GridData:
    methods = _grid_methods({r["method"] for r in rows})
    by_method = {m: {r["stimulus_name"]: r for r in rows if r["method"] == m} for m in methods}
    names = list(dict.fromkeys(r["stimulus_name"] for r in rows if r["method"] in methods))
    names = names[:max_images] if max_images else names
    grid = GridData(names, {"Stimulus": [_stimulus(lookup.get(n), settings) for n in names]})
    for method in methods:
        found = by_method[method]
        grid.rows[method_title(method)] = [
            _recon_image(recon_dir, found[n]) if n in found else None for n in names
        ]
    missing = sum(image is None for images in grid.rows.values() for image in images)
    if missing:
        grid.notes.append(f"{missing} image(s) missing or unreadable (shown as grey squares).")
    outside = [r for r in rows if not all(_inside(recon_dir, r.get(c)) for c in _PATH_COLUMNS)]
    if outside:
        grid.notes.append(
            f"{len(outside)} row(s) of index.csv name a file outside recon/ (first: "
            f"{outside[0].get('stimulus_name')}); such files are never shown."
        )
    return grid


def _inside(recon_dir: Path, text: str | None) -> Path | None:
    """``recon_dir / text`` when ``text`` is a relative path that stays inside ``recon_dir``
    (symlinks resolved), else None; an empty ``text`` counts as inside (nothing to read)."""
    if not text:
        return recon_dir
    try:
        return path_inside(text, recon_dir, "index.csv path")
    except DataError:
        return None


def method_title(method: str) -> str:
    """Readable name of a method of the index: ``e2e@iter0010000`` -> "End-to-end (snapshot
    10,000)"."""
    iteration = snapshot_iteration(method)
    base = method.split("@")[0]
    title = {"e2e": "End-to-end", "ridge": "Ridge baseline", "chance": "Chance"}.get(base, base)
    return f"{title} (snapshot {iteration:,})" if iteration is not None else title


def _grid_methods(methods: set[str]) -> list[str]:
    """End-to-end (the final model, else the latest snapshot), ridge, then any others."""
    finals = sorted(m for m in methods if snapshot_iteration(m) is None)
    if "e2e" not in finals:
        snapshots = sorted(
            (m for m in methods if m.startswith("e2e")), key=lambda m: snapshot_iteration(m) or 0
        )
        finals += snapshots[-1:]
    first = [m for m in finals if m.startswith("e2e")] + [m for m in finals if m == "ridge"]
    return first + [m for m in finals if m not in first]


def ordered_sets(names: Iterable[str]) -> list[str]:
    """Test sets in the paper's order (natural, shapes, letters), then any others."""
    names = set(names)
    return [s for s in SET_ORDER if s in names] + sorted(names - set(SET_ORDER))


def _images_dir(run_dir: Path, settings: Mapping[str, Any]) -> Path | None:
    """Stimulus folder: metrics.json or summary.json, then the config.

    Not a column of ``index.csv``: that file may come from elsewhere, and a folder it
    named would put pictures from anywhere on the page.
    """
    candidates: list[Any] = []
    for name in ("recon/metrics.json", "summary.json"):
        content = read_json(run_dir / name)
        if isinstance(content, dict):
            candidates.append(content.get("images_dir"))
            for nested in ("settings", "paths", "data"):
                if isinstance(content.get(nested), dict):
                    candidates.append(content[nested].get("images_dir"))
    candidates.append(settings.get("data", {}).get("images_dir"))
    for text in candidates:
        path = resolve_path(text, run_dir) if isinstance(text, str) else None
        if path is not None and path.is_dir():
            return path
    return None


def _image_lookup(images_dir: Path) -> dict[str, Path]:
    """File stem -> path of every image under ``images_dir`` (searched recursively)."""
    lookup: dict[str, Path] = {}
    for path in sorted(images_dir.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            lookup.setdefault(path.stem, path)
    return lookup


def _stimulus(path: Path | None, settings: Mapping[str, Any]) -> np.ndarray | None:
    """The stimulus as the network saw it at test time: resized, centre-cropped."""
    if path is None:
        return None
    data = settings.get("data", {})
    size, crop = int(data.get("image_size_px", 248)), int(data.get("crop_px", 227))
    try:
        image = load_image(path, size)
        image = center_crop_uint8(image, crop) if crop <= size else image
        image = grey_uint8(image, order="rgb") if data.get("colour") == "grey" else image
    except DataError:
        return None
    return thumbnail(np.ascontiguousarray(image), THUMBNAIL_PX)


def _recon_image(recon_dir: Path, row: Mapping[str, str]) -> np.ndarray | None:
    """Display image of a reconstruction: its .png, else .tif, else the raw .mat scaled."""
    for column in ("png", "tif"):
        path = _inside(recon_dir, row[column]) if row.get(column) else None
        if path is not None and path.is_file():
            try:
                with Image.open(path) as image:
                    return thumbnail(np.asarray(image.convert("RGB")), THUMBNAIL_PX)
            except OSError:
                continue
    mat = _inside(recon_dir, row["mat"]) if row.get("mat") else None
    if mat is not None and mat.is_file():
        try:
            import scipy.io

            raw = np.asarray(scipy.io.loadmat(mat)["gen_img"], dtype=np.float64)  # (H, W, 3)
        except (OSError, KeyError, ValueError, NotImplementedError):
            return None
        return thumbnail(display_image(raw), THUMBNAIL_PX)
    return None
