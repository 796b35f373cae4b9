"""Reading ``recon/metrics.json`` (written by :func:`e2e_recon.evaluate.evaluate.evaluate_recon`).

The evaluation writes (format ``e2e-recon/metrics``, version 1)::

    {"settings": {"images_dir": ..., "bootstrap": {"resamples", "ci", ...}, "chance": ...},
     "metrics": [{"key": "pixid", "label": "Pixel ident. (native)", "chance": 0.5}, ...],
     "feature_networks": [{"label": "effnet-lite2", "weights": "...", "layers": [...]}],
     "results": [{"set": "natural", "method": "e2e", "n_images": 50,
                  "scores": {"pixid": {"mean": .81, "ci_low": .77, "ci_high": .85}, ...}},
                 ..., {"set": "natural", "method": "chance", ...}]}

Methods are ``e2e``, ``ridge``, snapshots such as ``e2e@iter0010000`` and ``chance``.
The demo's ``summary.json`` holds the same object under ``"sets"``. A simpler
hand-made form, ``{"sets": {set: {"n_images", "methods": {method: {metric: value}},
"chance": {metric: value}}}}``, is also read; a value may be a number, None
(undefined), ``{"mean"|"value", "ci_low", "ci_high"}`` or ``{"value", "ci": [lo, hi]}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e_recon.report.contents import SET_ORDER, ordered_sets, read_json

_VALUE_KEYS = ("mean", "value", "estimate", "score", "accuracy")
_LOW_KEYS = ("ci_low", "low", "lo", "lower")
_HIGH_KEYS = ("ci_high", "high", "hi", "upper")
_KNOWN_LABELS = {"pixcorr": "PixCorr", "ssim": "SSIM", "pixid": "Pixel identification"}


@dataclass(frozen=True)
class MetricValue:
    """A metric's mean over images with its bootstrap interval; value None = undefined."""

    value: float | None
    low: float | None = None
    high: float | None = None


@dataclass
class SetMetrics:
    """Metrics of one test set: per method (chance apart), and notes."""

    n_images: int | None = None
    methods: dict[str, dict[str, MetricValue]] = field(default_factory=dict)
    chance: dict[str, MetricValue] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class PairedRow:
    """One paired comparison of a set: per-image differences of a method and a baseline."""

    set_name: str
    title: str  # "e2e - ridge"
    values: dict[str, MetricValue] = field(default_factory=dict)  # mean difference, interval
    wins: dict[str, float] = field(default_factory=dict)  # share of images won
    clear: set[str] = field(default_factory=set)  # keys whose interval excludes 0


@dataclass
class Metrics:
    """Everything the report shows from a metrics file."""

    sets: dict[str, SetMetrics] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # metric key -> column title, in order
    identification: set[str] = field(default_factory=set)  # keys shown as percentages
    notes: list[str] = field(default_factory=list)
    feature_networks: list[str] = field(default_factory=list)  # "label: weights"
    paired: list[PairedRow] = field(default_factory=list)

    def label(self, key: str) -> str:
        """Column title of a metric key."""
        return self.labels.get(key) or _KNOWN_LABELS.get(key) or key.replace("_", " ").capitalize()

    def is_identification(self, key: str) -> bool:
        """Whether a metric is an identification accuracy (chance 50%, shown in %)."""
        return key in self.identification or "ident" in key or key.startswith("pixid")


def load_metrics(recon_dir: Path) -> tuple[Metrics, str]:
    """Metrics from ``recon_dir/metrics.json``, else from the run's ``summary.json``; and a
    note for the page ("" when metrics.json was read)."""
    for path in (recon_dir / "metrics.json", recon_dir.parent / "summary.json"):
        content = read_json(path)
        parsed = parse_metrics(content) if content is not None else Metrics()
        if parsed.sets:
            return parsed, "" if path.name == "metrics.json" else f"Metrics read from {path.name}."
    if (recon_dir / "metrics.json").exists():
        return Metrics(), "recon/metrics.json could not be read as metrics."
    return Metrics(), "No metrics: run 'e2e-recon evaluate' to write recon/metrics.json."


def parse_metrics(content: Any) -> Metrics:
    """Normalise a metrics object (see the module docstring); empty when it holds none."""
    if not isinstance(content, dict):
        return Metrics()
    if isinstance(content.get("results"), list):
        return _parse_results(content)
    sets = content.get("sets")
    if isinstance(sets, dict) and isinstance(sets.get("results"), list):
        return _parse_results(sets)  # summary.json of the demo
    if not isinstance(sets, dict):
        sets = {k: v for k, v in content.items() if k in SET_ORDER}
    parsed = Metrics()
    for name in ordered_sets(sets):
        if isinstance(sets[name], dict):
            set_metrics = _parse_set(sets[name])
            if set_metrics.methods:
                parsed.sets[name] = set_metrics
    return parsed


def _parse_results(content: Mapping[str, Any]) -> Metrics:
    parsed = Metrics()
    for info in content.get("metrics") or []:
        if isinstance(info, dict) and "key" in info:
            parsed.labels[str(info["key"])] = str(info.get("label") or info["key"])
            if isinstance(info.get("chance"), int | float):
                parsed.identification.add(str(info["key"]))
    by_set: dict[str, SetMetrics] = {}
    for row in content["results"]:
        if not isinstance(row, dict) or not isinstance(row.get("scores"), dict):
            continue
        set_metrics = by_set.setdefault(str(row.get("set", "?")), SetMetrics())
        scores = {k: _metric_value(v) for k, v in row["scores"].items()}
        if row.get("method") == "chance":
            set_metrics.chance = scores
        else:
            set_metrics.methods[str(row.get("method", "?"))] = scores
            if set_metrics.n_images is None:
                set_metrics.n_images = _count(row.get("n_images"))
    parsed.sets = {name: by_set[name] for name in ordered_sets(by_set) if by_set[name].methods}
    parsed.notes = _settings_notes(content)
    parsed.feature_networks = [
        f"{net.get('label')}: {net.get('weights')}"
        for net in content.get("feature_networks") or []
        if isinstance(net, dict)
    ]
    parsed.paired = _parse_paired(content.get("comparisons"))
    return parsed


def _parse_paired(raw: Any) -> list[PairedRow]:
    """``comparisons`` of a metrics file (see :mod:`e2e_recon.evaluate.paired`)."""
    rows = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("scores"), dict):
            continue
        row = PairedRow(str(item.get("set", "?")), f"{item.get('method')} - {item.get('baseline')}")
        for key, score in item["scores"].items():
            if not isinstance(score, dict):
                continue
            row.values[key] = _metric_value(score)
            if (wins := _finite(score.get("wins"))) is not None:
                row.wins[key] = wins
            if score.get("excludes_zero") is True:
                row.clear.add(key)
        rows.append(row)
    return rows


def _settings_notes(content: Mapping[str, Any]) -> list[str]:
    """Sentences on how the numbers were made: feature networks, bootstrap, chance."""
    notes = []
    for net in content.get("feature_networks") or []:
        if isinstance(net, dict):
            layers = ", ".join(str(x) for x in net.get("layers") or [])
            notes.append(
                f"Feature identification in {net.get('label')}: {net.get('weights')}"
                + (f" (layers {layers})." if layers else ".")
            )
    settings = content.get("settings")
    settings = settings if isinstance(settings, dict) else {}
    boot = settings.get("bootstrap")
    if isinstance(boot, dict):
        notes.append(
            f"Intervals: {100 * float(boot.get('ci', 0.95)):.0f}% percentile bootstrap over "
            f"images, {boot.get('resamples')} resamples."
        )
    if isinstance(settings.get("chance"), str):
        notes.append(f"Chance: {settings['chance']}.")
    if isinstance(settings.get("stimulus_preparation"), str):
        notes.append(f"Stimuli prepared as the run's targets: {settings['stimulus_preparation']}.")
    ridge = (content.get("baselines") or {}).get("ridge")
    if isinstance(ridge, dict) and (alpha := _finite(ridge.get("alpha"))) is not None:
        notes.append(f"Ridge baseline: alpha {alpha:.3g} ({ridge.get('selection', '')}).")
    return notes


def _parse_set(raw: Mapping[str, Any]) -> SetMetrics:
    result = SetMetrics(n_images=_count(raw.get("n_images", raw.get("n"))))
    methods = raw.get("methods")
    if not isinstance(methods, dict):
        skip = {"chance", "notes", "note"}
        methods = {k: v for k, v in raw.items() if isinstance(v, dict) and k not in skip}
    for method, values in methods.items():
        if method != "chance" and isinstance(values, dict):
            result.methods[method] = dict(_flatten(values))
    chance = raw.get("chance", methods.get("chance"))
    if isinstance(chance, dict):
        result.chance = {k: v for k, v in _flatten(chance) if v.value is not None}
    notes = raw.get("notes", raw.get("note"))
    result.notes = [notes] if isinstance(notes, str) else [str(n) for n in notes or []]
    return result


def _flatten(raw: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, MetricValue]]:
    """(name, value) pairs; nested groups without a value key become ``group_sub`` names."""
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not any(k in value for k in (*_VALUE_KEYS, "ci")):
            yield from _flatten(value, f"{name}_")
        elif not isinstance(value, bool | str):
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


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
