"""Reading what a run directory holds, for the report: settings, data origin, grids, metrics.

Every reader here tolerates missing or partial files (a run that stopped early, a
folder copied without its data): it returns what it can plus notes for the page.

``recon/metrics.json`` (written by :mod:`e2e_recon.evaluate.evaluate`) is read in
this form, the shape of ``summary.json`` of the demo as well::

    {"sets": {"natural": {"n_images": 50,
                          "methods": {"e2e": {"pixel_identification":
                                                  {"mean": 0.81, "ci_low": 0.77, "ci_high": 0.85},
                                              "pixcorr": {...}, ...},
                                      "ridge": {...}, "e2e@iter0001000": {...}},
                          "chance": {"pixel_identification": 0.5, ...}},
              "shapes": {...}, "letters": {...}},
     "images_dir": "...", ...}

A metric may also be a bare number, ``{"value": .., "ci": [low, high]}``, or None
(undefined, e.g. identification with fewer than two images); set names may sit at
the top level instead of under ``"sets"``; chance may be given as a method.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from e2e_recon.config import Config, to_dict
from e2e_recon.data.images import center_crop_uint8, load_image
from e2e_recon.errors import DataError
from e2e_recon.report.figures import snapshot_iteration, thumbnail

SET_ORDER = ("natural", "shapes", "letters")
THUMBNAIL_PX = 128  # embedded size: sharp at the 96 px shown, and on high-density screens
_IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
_VALUE_KEYS = ("mean", "value", "estimate", "score", "accuracy")
_LOW_KEYS = ("ci_low", "low", "lo", "lower", "ci_lower")
_HIGH_KEYS = ("ci_high", "high", "hi", "upper", "ci_upper")


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
    """An existing path named in the run's files: as given, or relative to the run or its
    parent folder (configs often hold paths relative to where the command ran)."""
    if not text:
        return None
    path = Path(text).expanduser()
    candidates = [path] if path.is_absolute() else [path, run_dir / path, run_dir.parent / path]
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
    facts = [("Subject", str(data.get("subject", "")))]
    facts += [("Training data", str(data.get("train_fmri") or "(not set)"))]
    facts += [("Test data", "\n".join(str(t) for t in data.get("test_fmri") or []) or "(not set)")]
    facts += [("Stimulus images", str(data.get("images_dir") or "(not set)"))]
    facts += [("Voxels", str(data.get("roi", "")))]
    if truth is not None:
        facts += _truth_facts(truth)
    label, random = comparator_label(settings, summary)
    extra = [("Evaluation network", str(settings.get("eval", {}).get("feature_network", "")))]
    for key in ("seed", "wall_s", "peak_rss_mb"):
        if isinstance(summary.get(key), int | float):
            extra.append((key, f"{summary[key]:g}"))
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
    return True if isinstance(summary.get("sim"), dict) else None


def _truth_dir(paths: Iterable[Path]) -> Path | None:
    """``DIR/truth`` of a simulated subject, found from its ``DIR/fmri/*.h5`` or ``DIR/images``."""
    for path in paths:
        for parent in list(path.parents)[:3]:
            if (parent / "truth").is_dir():
                return parent / "truth"
    return None


def _truth_facts(truth: Path) -> list[tuple[str, str]]:
    """Scalar settings from the simulated subject's ground-truth metadata (JSON files)."""
    facts: list[tuple[str, str]] = []
    for path in sorted(truth.glob("*.json"))[:4]:
        if path.stat().st_size > 1_000_000:
            continue
        content = read_json(path)
        if isinstance(content, dict):
            facts += [
                (f"Simulation: {k}", str(v))
                for k, v in content.items()
                if isinstance(v, str | int | float | bool) and len(str(v)) < 120
            ][:12]
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
        stated = stated.get("weights_label") or stated.get("label")
    if isinstance(stated, str) and stated:
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
    images_dir = _images_dir(run_dir, index, settings)
    lookup = _image_lookup(images_dir) if images_dir is not None else {}
    grids: dict[str, GridData] = {}
    for set_name in _ordered({r["set"] for r in index}):
        if sets is not None and set_name not in sets:
            continue
        rows = [r for r in index if r["set"] == set_name]
        grids[set_name] = _set_grid(recon_dir, rows, lookup, settings, max_images)
        if images_dir is None:
            grids[set_name].notes.append("Stimulus images not found (set data.images_dir).")
    return grids


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
        label = {"e2e": "End-to-end", "ridge": "Ridge baseline"}.get(method, method)
        found = by_method[method]
        grid.rows[label] = [
            _recon_image(recon_dir, found[n]) if n in found else None for n in names
        ]
    missing = sum(image is None for images in grid.rows.values() for image in images)
    if missing:
        grid.notes.append(f"{missing} image(s) missing or unreadable (shown as grey squares).")
    return grid


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


def _ordered(names: Iterable[str]) -> list[str]:
    names = set(names)
    return [s for s in SET_ORDER if s in names] + sorted(names - set(SET_ORDER))


def _images_dir(
    run_dir: Path, index: Sequence[Mapping[str, str]], settings: Mapping[str, Any]
) -> Path | None:
    """Stimulus folder: an index column, then metrics.json or summary.json, then the config."""
    candidates = [r.get("images_dir") for r in index[:1]]
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
        if path.suffix.lower() in _IMAGE_SUFFIXES:
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
    except DataError:
        return None
    return thumbnail(np.ascontiguousarray(image), THUMBNAIL_PX)


def _recon_image(recon_dir: Path, row: Mapping[str, str]) -> np.ndarray | None:
    """Display image of a reconstruction: its .png, else .tif, else the raw .mat scaled."""
    for column in ("png", "tif"):
        path = recon_dir / row.get(column, "") if row.get(column) else None
        if path is not None and path.is_file():
            try:
                with Image.open(path) as image:
                    return thumbnail(np.asarray(image.convert("RGB")), THUMBNAIL_PX)
            except OSError:
                continue
    mat = recon_dir / row["mat"] if row.get("mat") else None
    if mat is not None and mat.is_file():
        try:
            import scipy.io

            raw = np.asarray(scipy.io.loadmat(mat)["gen_img"], dtype=np.float64)  # (H, W, 3)
        except (OSError, KeyError, ValueError, NotImplementedError):
            return None
        low, high = np.percentile(raw, [0.02, 99.98])  # the published 0.04% display clipping
        scaled = (np.clip(raw, low, high) - low) / max(high - low, 1e-12) * 255.0
        return thumbnail(scaled.round().astype(np.uint8), THUMBNAIL_PX)
    return None


# --------------------------------------------------------------------------------------------
# Metrics (recon/metrics.json)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricValue:
    """A metric's mean over images with its bootstrap interval; value None = undefined."""

    value: float | None
    low: float | None = None
    high: float | None = None


@dataclass
class SetMetrics:
    """Metrics of one test set: per method, chance level, and notes."""

    n_images: int | None = None
    methods: dict[str, dict[str, MetricValue]] = field(default_factory=dict)
    chance: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def load_metrics(recon_dir: Path) -> tuple[dict[str, SetMetrics], str]:
    """Metrics per test set from ``recon_dir/metrics.json`` (see the module docstring), falling
    back to the run's ``summary.json``; and a note for the page ("" when all is well)."""
    for path in (recon_dir / "metrics.json", recon_dir.parent / "summary.json"):
        content = read_json(path)
        if content is None:
            continue
        parsed = parse_metrics(content)
        if parsed:
            note = "" if path.name == "metrics.json" else f"Metrics read from {path.name}."
            return parsed, note
    if (recon_dir / "metrics.json").exists():
        return {}, "recon/metrics.json could not be read as metrics."
    return {}, "No metrics: run 'e2e-recon evaluate' to write recon/metrics.json."


def parse_metrics(content: Any) -> dict[str, SetMetrics]:
    """Normalise the metrics JSON (any of the forms in the module docstring)."""
    if not isinstance(content, dict):
        return {}
    sets = content.get("sets") if isinstance(content.get("sets"), dict) else None
    if sets is None:
        sets = {k: v for k, v in content.items() if k in SET_ORDER and isinstance(v, dict)}
    parsed = {
        name: _parse_set(sets[name]) for name in _ordered(sets) if isinstance(sets[name], dict)
    }
    return {name: m for name, m in parsed.items() if m.methods}


def _parse_set(raw: Mapping[str, Any]) -> SetMetrics:
    result = SetMetrics()
    n = raw.get("n_images", raw.get("n"))
    result.n_images = int(n) if isinstance(n, int | float) and not isinstance(n, bool) else None
    methods = raw.get("methods")
    if not isinstance(methods, dict):
        skip = {"chance", "notes", "note", "warnings"}
        methods = {k: v for k, v in raw.items() if isinstance(v, dict) and k not in skip}
    chance_raw = raw.get("chance", methods.get("chance"))
    for method, values in methods.items():
        if method != "chance" and isinstance(values, dict):
            result.methods[method] = dict(_flatten_metrics("", values))
    if isinstance(chance_raw, dict):
        flat = _flatten_metrics("", chance_raw)
        result.chance = {k: v.value for k, v in flat if v.value is not None}
    for key in ("notes", "note", "warnings"):
        value = raw.get(key)
        result.notes += [value] if isinstance(value, str) else [str(v) for v in value or []]
    return result


def _flatten_metrics(prefix: str, raw: Mapping[str, Any]) -> Iterable[tuple[str, MetricValue]]:
    """(name, value) pairs; nested groups without a value key become ``group_sub`` names."""
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not any(k in value for k in (*_VALUE_KEYS, "ci")):
            yield from _flatten_metrics(f"{name}_", value)
        elif (isinstance(value, dict | list | int | float) or value is None) and not isinstance(
            value, bool
        ):
            yield name, _metric_value(value)


def _metric_value(raw: Any) -> MetricValue:
    if isinstance(raw, list):  # [mean, low, high]
        numbers = [_finite(v) for v in raw[:3]] + [None, None]
        return MetricValue(numbers[0], numbers[1], numbers[2])
    if not isinstance(raw, dict):
        return MetricValue(_finite(raw))
    value = _finite(next((raw[k] for k in _VALUE_KEYS if k in raw), None))
    low = _finite(next((raw[k] for k in _LOW_KEYS if k in raw), None))
    high = _finite(next((raw[k] for k in _HIGH_KEYS if k in raw), None))
    ci = raw.get("ci")
    if isinstance(ci, list | tuple) and len(ci) == 2:
        low, high = _finite(ci[0]), _finite(ci[1])
    return MetricValue(value, low, high)


def _finite(value: Any) -> float | None:
    """A finite float, or None for None, NaN, strings like "nan" and anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
