"""Score a reconstruction folder against the stimulus images.

:func:`evaluate_recon` reads ``OUT/index.csv`` (written by ``reconstruct``),
finds each stimulus image by name in the images folder (any extension, any
subfolder), and computes per image and per (set, method):

- pixel identification (Pearson correlation, bdpy-identical) at the
  reconstructions' native size (227 px) and at a common resolution;
- PixCorr and SSIM (settings in :mod:`e2e_recon.evaluate.metrics`);
- two-way identification in the feature space of each feature network at an
  early and a late depth (default: EfficientNet-Lite2, ImageNet weights);
- bootstrap intervals over images, and a "chance" row per set.

The stimulus is prepared as the generator was trained: resized to 248 px
(bilinear), centre 227 px, resized again if a reconstruction has another size.
Reconstructions are scored as display images: the raw ``gen_img`` array of each
``.mat`` file through the published display conversion (0.04% of extreme values
clipped, stretched to 0-255; the image saved as TIFF), or the ``.png`` when no
``.mat`` is listed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.table import Table
from torch import nn

from e2e_recon.data.geometry import PAPER_SOURCE, ImageGeometry, read_geometry
from e2e_recon.data.images import grey_float, rgb_uint8_to_caffe
from e2e_recon.device import autocast, resolve_device, resolve_precision
from e2e_recon.errors import DataError
from e2e_recon.evaluate import recon_files as files
from e2e_recon.evaluate.metrics import (
    CHANCE_IDENTIFICATION,
    SSIM_SETTINGS,
    bootstrap_ci,
    feature_identification,
    json_number,
    pairwise_identification,
    pixcorr,
    resize_images,
    ssim_scores,
)
from e2e_recon.evaluate.paired import paired_comparisons
from e2e_recon.evaluate.suite_common import SuiteGroup
from e2e_recon.evaluate.suites import SuiteOptions, parse_suites, run_suites
from e2e_recon.fileio import atomic_write_text
from e2e_recon.recon.reconstruct import read_index
from e2e_recon.recon.records import read_ridge_record

METRICS_FORMAT = "e2e-recon/metrics"
#: Feature networks known by name: name -> (column label, EfficientNet-Lite variant).
KNOWN_FEATURE_NETS = {
    "efficientnet-lite2": ("effnet-lite2", "lite2"),
    "efficientnet-lite0": ("effnet-lite0", "lite0"),
}
DEFAULT_FEATURE_NETS: tuple[str, ...] = ("efficientnet-lite2",)


@dataclass(frozen=True)
class FeatureNet:
    """A comparator-like network and the layers whose features identify images.

    ``module(x, layers)`` takes Caffe-space images (B, 3, H, W) and returns
    ``{layer: (B, ...)}``; ``layers`` default to an early and the last of its
    ``layer_names`` (see :func:`feature_net`).
    """

    label: str
    module: nn.Module
    layers: tuple[str, ...]

    @property
    def weights_label(self) -> str:
        return str(getattr(self.module, "weights_label", self.label))


def feature_net(label: str, module: nn.Module, layers: Sequence[str] | None = None) -> FeatureNet:
    """Wrap a comparator; default layers: ``layer_names[len // 3]`` and ``layer_names[-1]``."""
    names = tuple(getattr(module, "layer_names", ()))
    if layers is None:
        if not names:
            raise DataError(f"feature network {label!r} has no layer_names; pass layers")
        layers = (names[len(names) // 3], names[-1])
    return FeatureNet(label, module, tuple(dict.fromkeys(layers)))


def alexnet_feature_net(weights: Path) -> FeatureNet:
    """AlexNet(2) and AlexNet(5) of current benchmarks, from a torchvision state-dict file.

    The layers are the outputs of the second and fifth convolutions after their
    ReLU (torchvision ``features.4`` and ``features.11``).
    """
    from e2e_recon.nets.comparator import load_alexnet

    return feature_net("AlexNet", load_alexnet(weights), ("conv2", "conv5"))


def _resolve_feature_nets(
    specs: Sequence[str | FeatureNet], device: torch.device
) -> list[FeatureNet]:
    nets = []
    for spec in specs:
        if isinstance(spec, str):
            if spec not in KNOWN_FEATURE_NETS:
                raise DataError(
                    f"feature network {spec!r} is not known; expected one of "
                    f"{sorted(KNOWN_FEATURE_NETS)} or a FeatureNet"
                )
            from e2e_recon.nets.efficientnet_lite import load_efficientnet_lite

            label, variant = KNOWN_FEATURE_NETS[spec]
            spec = feature_net(label, load_efficientnet_lite(variant))
        # channels_last: a layout change only, about 3x faster for these nets on CPU.
        spec.module.to(device).eval()
        spec.module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        nets.append(spec)
    return nets


def evaluate_recon(
    recon_dir: Path,
    images_dir: Path | None = None,
    resolution_px: int | None = 64,
    feature_nets: Sequence[str | FeatureNet] = DEFAULT_FEATURE_NETS,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    device: str = "auto",
    precision: str = "fp32",
    stimulus_resize_px: int | None = None,
    stimulus_crop_px: int | None = None,
    suites: Sequence[str] = ("default",),
    suite_options: SuiteOptions | None = None,
) -> dict[str, Any]:
    """Evaluate every (method, set) of a reconstruction folder; write the results there.

    Parameters
    ----------
    recon_dir : Path
        Folder with ``index.csv`` (written by ``e2e-recon reconstruct``).
    images_dir : Path, optional
        Stimulus images, found by stimulus name with any image extension in this
        folder or its subfolders. Default: ``recon_dir / "stimuli"``.
    resolution_px : int or None
        Common resolution of the second pixel identification (both images
        resized, bicubic, antialiased); ``None`` skips it.
    feature_nets : sequence of str or FeatureNet
        Networks for feature identification: names in :data:`KNOWN_FEATURE_NETS`
        (loaded lazily) or :class:`FeatureNet`; empty to skip.
    n_boot, seed, ci : int, int, float
        Bootstrap over images (percentile intervals of the mean).
    device : str
        Device of the feature networks: ``auto|cpu|cuda|mps``.
    precision : str
        ``fp32`` (default: the same numbers on every machine), ``bf16``, or
        ``auto`` (bf16 autocast where the device runs it natively and faster).
    stimulus_resize_px, stimulus_crop_px : int, optional
        How stimuli are prepared to match what the generator was trained on:
        resized to this size, then centre-cropped. Default: the geometry that
        ``reconstruct`` recorded in ``recon_dir / "geometry.json"`` (the run's
        ``data.image_size_px`` and ``data.crop_px``), else the paper's 248 and
        227. Values that differ from the record override it; the result's
        ``notices`` say so.
    suites : sequence of str
        ``default`` (the table above: pixel and feature identification, PixCorr,
        SSIM, intervals, paired comparisons), ``nsd`` (the NSD benchmark's eight
        numbers) and/or ``kamitani`` (the lab's identification analyses); see
        :mod:`e2e_recon.evaluate.suites`. Without ``default``, ``metrics``,
        ``results`` and ``comparisons`` are empty and no ``per_image.csv`` is written.
    suite_options : SuiteOptions, optional
        Data home of the suites' networks, n-way settings, distractor images.

    Returns
    -------
    dict
        As written to ``recon_dir / "metrics.json"``: ``settings``, ``metrics``
        (key, label, chance), ``feature_networks``, ``results`` (one entry per
        set and method, plus a ``"chance"`` method per set), ``comparisons``
        (each method against each ridge baseline of its set, paired per image:
        see :func:`e2e_recon.evaluate.paired.paired_comparisons`), ``baselines``
        (how the ridge baseline was fitted, when recorded), ``notices`` and, when
        another suite ran, ``suites`` (its tables by suite name). Per-image scores of the
        default suite go to ``recon_dir / "per_image.csv"``.

    Raises
    ------
    DataError
        No index, files listed in the index missing, stimuli without an image,
        or a set with fewer than 2 images (identification undefined).
    """
    recon_dir = Path(recon_dir)
    images_dir = Path(images_dir) if images_dir is not None else recon_dir / "stimuli"
    rows = read_index(recon_dir / "index.csv")
    files.check_listed_files(recon_dir, rows)
    stimulus_paths = files.find_stimuli(images_dir, sorted({r["stimulus_name"] for r in rows}))
    suites = parse_suites(suites)
    run_default = "default" in suites
    torch_device = resolve_device(device)
    nets = _resolve_feature_nets(feature_nets if run_default else (), torch_device)
    dtype = resolve_precision(precision, torch_device) if nets else torch.float32
    scorer = _Scorer(nets, resolution_px, torch_device, dtype)
    geometry, notices = recorded_geometry(recon_dir, stimulus_resize_px, stimulus_crop_px)
    scorer.stimulus_px = (geometry.image_size_px, geometry.crop_px)
    scorer.grey = geometry.colour == "grey"
    boot = _Bootstrap(n_boot, ci, seed)
    results: list[dict[str, Any]] = []
    per_image: list[dict[str, Any]] = []
    per_method: dict[tuple[str, str], tuple[tuple[str, ...], dict[str, np.ndarray]]] = {}
    suite_groups: list[SuiteGroup] = []
    for set_name, methods in files.group_rows(rows).items():
        stimuli = np.zeros(0)
        for method, group in methods.items():
            if len(group) < 2:
                raise DataError(
                    f"{recon_dir / 'index.csv'}: set {set_name!r}, method {method!r} has "
                    f"{len(group)} image; identification is undefined for fewer than 2 images"
                )
            names = tuple(r["stimulus_name"] for r in group)
            recons = files.load_recons(recon_dir, group)  # (N, S, S, 3)
            recons = grey_float(recons) if scorer.grey else recons
            stimuli = scorer.stimuli(tuple(stimulus_paths[n] for n in names), recons)
            if len(suites) > int(run_default):
                suite_groups.append(SuiteGroup(set_name, method, names, recons, stimuli))
            if not run_default:
                continue
            scores = scorer.score(recons, stimuli, key=(set_name, names))
            summary = {key: boot.summary(values) for key, values in scores.items()}
            results.append(_result_row(set_name, method, recons, summary))
            per_image += _per_image_rows(group, scores)
            per_method[(set_name, method)] = (names, scores)
        if run_default:
            results.append(_chance_row(set_name, stimuli, scorer.metric_keys, boot))
    suite_results, suite_notices = run_suites(
        suite_groups, suites, suite_options or SuiteOptions(), torch_device, geometry
    )
    result = {
        "format": METRICS_FORMAT,
        "version": 1,
        "settings": _settings(images_dir, resolution_px, n_boot, ci, seed, str(dtype), geometry),
        "metrics": scorer.metric_info() if run_default else [],
        "feature_networks": [
            {"label": n.label, "weights": n.weights_label, "layers": list(n.layers)} for n in nets
        ],
        "results": results,
        "comparisons": paired_comparisons(per_method, n_boot, ci, seed),
        "baselines": {"ridge": ridge} if (ridge := read_ridge_record(recon_dir)) else {},
        "notices": notices + suite_notices,
    }
    if suite_results:  # a default-only evaluation writes the same file as before
        result["suites"] = suite_results
    atomic_write_text(recon_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
    if run_default:
        atomic_write_text(
            recon_dir / "per_image.csv", files.csv_text(per_image, scorer.metric_keys)
        )
    return result


class _Scorer:
    """Per-image scores of one (set, method); caches stimulus features per set."""

    def __init__(
        self,
        nets: list[FeatureNet],
        resolution_px: int | None,
        device: torch.device,
        dtype: torch.dtype,
    ):
        self.nets, self.resolution_px = nets, resolution_px
        self.device, self.dtype = device, dtype
        self._stimulus_features: dict[object, dict[str, np.ndarray]] = {}
        self._stimuli: dict[object, np.ndarray] = {}
        self.stimulus_px = (files.STIMULUS_RESIZE_PX, files.STIMULUS_CROP_PX)  # resize, crop
        # Grey mode: stimuli and reconstructions scored as luminance in three equal
        # channels (pixel scores equal those of one channel; feature nets take RGB).
        self.grey = False
        self.metric_keys = ["pixid", *([f"pixid_{resolution_px}px"] if resolution_px else [])]
        self.metric_keys += ["pixcorr", "ssim"]
        self.metric_keys += [f"{n.label}/{layer}" for n in nets for layer in n.layers]

    def metric_info(self) -> list[dict[str, Any]]:
        labels = {"pixid": "Pixel ident. (native)", "pixcorr": "PixCorr", "ssim": "SSIM"}
        if self.resolution_px:
            labels[f"pixid_{self.resolution_px}px"] = f"Pixel ident. ({self.resolution_px} px)"
        info = []
        for key in self.metric_keys:
            is_identification = key not in ("pixcorr", "ssim")
            info.append(
                {
                    "key": key,
                    "label": labels.get(key, key.replace("/", " ") + " ident."),
                    "chance": CHANCE_IDENTIFICATION if is_identification else None,
                }
            )
        return info

    def stimuli(self, paths: tuple[Path, ...], recons: np.ndarray) -> np.ndarray:
        """Stimuli prepared for these reconstructions, loaded once per set and size."""
        key = (paths, recons.shape[1:])
        if key not in self._stimuli:
            stimuli = files.load_stimuli(list(paths), recons.shape[1], *self.stimulus_px)
            self._stimuli[key] = grey_float(stimuli) if self.grey else stimuli
        return self._stimuli[key]

    def score(self, recons: np.ndarray, stimuli: np.ndarray, key: object) -> dict[str, np.ndarray]:
        n = len(recons)
        scores = {"pixid": pairwise_identification(recons, stimuli)}
        if self.resolution_px:
            small_recons = resize_images(recons, self.resolution_px)
            small_stimuli = resize_images(stimuli, self.resolution_px)
            scores[f"pixid_{self.resolution_px}px"] = pairwise_identification(
                small_recons, small_stimuli
            )
        scores["pixcorr"] = pixcorr(recons, stimuli)
        scores["ssim"] = ssim_scores(recons, stimuli)
        cache_key = (key, n, recons.shape[1:])
        if cache_key not in self._stimulus_features:
            self._stimulus_features[cache_key] = self._features(stimuli)
        true_features = self._stimulus_features[cache_key]
        for name, pred in self._features(recons).items():
            scores[name] = feature_identification(pred, true_features[name])
        return scores

    def _features(self, images: np.ndarray, batch_size: int = 25) -> dict[str, np.ndarray]:
        """RGB 0-255 (N, S, S, 3) -> {"label/layer": (N, D) float32}."""
        out: dict[str, list[np.ndarray]] = {}
        for net in self.nets:
            for start in range(0, len(images), batch_size):
                caffe = rgb_uint8_to_caffe(images[start : start + batch_size])  # (B, 3, S, S)
                x = torch.from_numpy(caffe).to(self.device)
                with torch.inference_mode(), autocast(self.device, self.dtype):
                    feats = net.module(x.contiguous(memory_format=torch.channels_last), net.layers)
                for layer, value in feats.items():
                    flat = value.float().reshape(len(x), -1).cpu().numpy()  # (B, D)
                    out.setdefault(f"{net.label}/{layer}", []).append(flat)
        return {k: np.concatenate(v) for k, v in out.items()}


@dataclass(frozen=True)
class _Bootstrap:
    n_boot: int
    ci: float
    seed: int

    def summary(self, values: np.ndarray) -> dict[str, float | None]:
        low, high = bootstrap_ci(values, n_boot=self.n_boot, ci=self.ci, seed=self.seed)
        return {
            "mean": json_number(np.nanmean(values)),
            "ci_low": json_number(low),
            "ci_high": json_number(high),
        }


def _result_row(
    set_name: str, method: str, images: np.ndarray, scores: dict[str, dict[str, float | None]]
) -> dict[str, Any]:
    size = int(images.shape[1])
    return {
        "set": set_name,
        "method": method,
        "n_images": len(images),
        "image_size_px": size,
        "scores": scores,
    }


def _chance_row(
    set_name: str, stimuli: np.ndarray, metric_keys: list[str], boot: _Bootstrap
) -> dict[str, Any]:
    """0.5 for identification; for PixCorr and SSIM, another stimulus of the set (i, i+1)."""
    other = np.roll(stimuli, -1, axis=0)
    empirical = {"pixcorr": pixcorr(other, stimuli), "ssim": ssim_scores(other, stimuli)}
    exact = {"mean": CHANCE_IDENTIFICATION, "ci_low": None, "ci_high": None}
    scores = {k: boot.summary(empirical[k]) if k in empirical else dict(exact) for k in metric_keys}
    return _result_row(set_name, "chance", stimuli, scores)


def recorded_geometry(
    recon_dir: Path, resize_px: int | None = None, crop_px: int | None = None
) -> tuple[ImageGeometry, list[str]]:
    """The geometry of a reconstruction folder, with explicit values applied, and notices."""
    recorded = read_geometry(recon_dir)
    geometry, notices = (recorded or ImageGeometry()).with_overrides(resize_px, crop_px)
    if recorded is None and not notices:
        notices = [f"stimuli prepared as in the paper ({geometry.describe()}): {PAPER_SOURCE}"]
    return geometry, notices


def _settings(
    images_dir: Path,
    resolution_px: int | None,
    n_boot: int,
    ci: float,
    seed: int,
    dtype: str,
    geometry: ImageGeometry,
) -> dict[str, Any]:
    return {
        "feature_precision": dtype,
        "images_dir": str(images_dir),
        "stimulus_preparation": f"{geometry.describe()}, bicubic to the reconstruction size "
        "if it differs",
        "geometry": {k: v for k, v in geometry.to_dict().items() if k not in ("format", "version")},
        "reconstruction_values": "display image: gen_img of the .mat with the 0.04% most "
        "extreme values clipped and stretched to 0-255 (as saved to .tif); else the .png",
        "pixel_identification": "Pearson correlation, ties count as failures (bdpy definition)",
        "common_resolution_px": resolution_px,
        "ssim": SSIM_SETTINGS,
        "feature_identification": "Pearson correlation of all units of a layer, two-way",
        "bootstrap": {"resamples": n_boot, "ci": ci, "seed": seed, "over": "images"},
        "chance": "0.5 for identification; PixCorr and SSIM of another stimulus of the "
        "same set (pairs i, i+1) in place of the reconstruction",
    }


def _per_image_rows(group: list[dict[str, str]], scores: dict[str, np.ndarray]) -> list[dict]:
    keep = ("set", "method", "stimulus_id", "stimulus_name", "n_trials")
    return [
        {**{k: row[k] for k in keep}, **{k: json_number(v[i]) for k, v in scores.items()}}
        for i, row in enumerate(group)
    ]


def metrics_table(result: dict[str, Any]) -> Table:
    """Rich table of a result of :func:`evaluate_recon`: set x method rows, metric columns.

    Cells read ``mean [low, high]`` (bootstrap interval); the chance row is dimmed.
    """
    nets = "; ".join(f"{n['label']}: {n['weights']}" for n in result["feature_networks"])
    ci = result["settings"]["bootstrap"]["ci"]
    table = Table(title=f"Reconstruction metrics, mean [{ci:.0%} bootstrap interval]")
    if nets:
        table.caption = f"Feature identification with {nets}"
    table.add_column("Set")
    table.add_column("Method")
    table.add_column("N", justify="right")
    for metric in result["metrics"]:
        table.add_column(metric["label"], justify="right")
    previous_set = None
    for row in result["results"]:
        if previous_set is not None and row["set"] != previous_set:
            table.add_section()
        previous_set = row["set"]
        cells = [_cell(row["scores"].get(m["key"])) for m in result["metrics"]]
        style = "dim" if row["method"] == "chance" else None
        n = "" if row["method"] == "chance" else str(row["n_images"])
        table.add_row(row["set"], row["method"], n, *cells, style=style)
    return table


def _cell(score: dict[str, float | None] | None) -> str:
    if score is None or score["mean"] is None:
        return "-"
    if score["ci_low"] is None or score["ci_high"] is None:
        return f"{score['mean']:.3f}"
    return f"{score['mean']:.3f} [{score['ci_low']:.2f}, {score['ci_high']:.2f}]"
