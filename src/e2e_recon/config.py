"""Run configuration: frozen dataclasses, YAML presets, command-line overrides.

Every run is described by one :class:`Config` tree. It is loaded from a preset
(``paper``, ``demo``, ``small`` or a YAML file), overridden with ``section.key=value``
strings, validated (a key typo names the nearest valid key), and written to the run
directory before any work starts. Field names carry their units.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from e2e_recon.errors import ConfigError
from e2e_recon.fileio import atomic_write_text

PRESETS_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class DataConfig:
    """Where the data is and how it is preprocessed."""

    subject: str = "sub-01"
    train_fmri: str = ""  # BData .h5 of the training session
    test_fmri: tuple[str, ...] = ()  # BData .h5 of each test session (natural, shapes, letters)
    images_dir: str = ""  # folder of stimulus images (searched recursively by file name)
    roi: str = "ROI_VC = 1"  # selection expression for the voxels
    image_size_px: int = 248  # images are resized to this before cropping
    crop_px: int = 227  # random crop during training, centre crop at test time
    train_images: int = 0  # use only the first N training images (0 = all)
    val_images: int = 0  # hold out N whole training images for validation (0 = none)
    val_fraction: float = 0.0  # or this fraction of the images, when val_images is 0
    drop_nonfinite_voxels: bool = False  # drop voxel columns with NaN/inf instead of failing
    # all: every voxel of the ROI | image-r2: keep the voxels the training images predict
    # best (recon/voxel_selection.py), data.voxel_fraction of them (0: cross-validated)
    voxel_selection: str = "all"
    voxel_fraction: float = 0.0
    cache_dir: str = ""  # preprocessed-image cache ("" = the data home's cache/images)
    # random: each batch drawn with replacement; epoch: one fixed shuffled order per run,
    # read in order and wrapped (the published LMDB)
    sampling: str = "random"
    # Where the training set is held during training: auto (on the training device when it
    # fits in a share of its free memory, else host memory), device, or host
    placement: str = "auto"
    # auto: grey when every training stimulus is greyscale; rgb or grey force the mode
    # (grey: luminance targets, exactly grey generator output, greyscale reconstructions)
    colour: str = "auto"
    # A shared run (model.shared): one training file per subject; data.train_fmri then
    # unused (a one-subject shared run may give it instead)
    train_fmri_subjects: tuple[str, ...] = ()
    # The subjects of data.train_fmri_subjects, in order (empty: from the file names, sub-01_...)
    subjects: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelConfig:
    """Networks: generator architecture, comparator and discriminator."""

    fc_width: int = 4096  # width of defc7, defc6, defc5
    output_size_px: int = 256  # generator output before the centre crop
    base_channels: int = 256  # channels of the first 4 x 4 feature map
    leaky_slope: float = 0.3
    comparator: str = "caffenet"  # caffenet | alexnet | efficientnet-lite0 | ... | random-caffenet
    comparator_path: str = ""  # weights file for caffenet / alexnet ("" = data home)
    feature_layers: tuple[str, ...] = ("pool5",)
    first_layer_l2: float = 0.0  # extra L2 on the generator's first fully connected layer
    input_dropout: float = 0.0  # dropout on the voxel input during training
    first_layer_init: str = "random"  # random (He, published) | ridge | pca
    # One input layer per subject in front of shared layers (several training files)
    shared: bool = False


@dataclass(frozen=True)
class LossConfig:
    """Loss weights in Caffe's convention (Euclidean = sum of squares / 2 / batch)."""

    image_weight: float = 2e-6
    feature_weight: float = 0.01
    adversarial_weight: float = 100.0
    warmup_iters: int = 0  # ramp feature and adversarial weights up linearly over this many
    # "absolute" (published) or "mean_image": feature and adversarial weights are then
    # fractions of the weighted image loss, each term measured for the mean training image
    weighting: str = "absolute"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, balance rule, snapshots and hardware."""

    batch_size: int = 64
    iters: int = 500_000
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    discriminator_weight_decay: float = 4e-4  # Caffe-style L2 added to the gradient
    generator_weight_decay: float = 0.0
    lr_halve_at_iters: tuple[int, ...] = (300_000, 500_000, 700_000, 900_000, 1_100_000)
    balance_stop_d_below: float = 0.1
    balance_resume_d_above: float = 0.5
    balance_stop_g_above: float = 10.0
    # The adversarial term every k-th iteration only: the discriminator's step and its term in
    # the generator's loss (weighted x k, so its mean over iterations is unchanged); in the
    # other iterations the discriminator does not run and the balance rule keeps its state.
    # 1 = every iteration (published).
    adversarial_every_iters: int = 1
    # Likewise the feature term (the comparator's two passes), weighted x k where it runs.
    feature_every_iters: int = 1
    snapshot_every_iters: int = 10_000  # and at the end or a stop (0 = only then)
    log_every_iters: int = 100
    grid_every_iters: int = 10_000  # save a grid of current reconstructions (0 = never)
    val_every_iters: int = 0  # evaluate the validation split (0 = never)
    early_stop_patience: int = 0  # stop after this many validations without improvement (0 = off)
    # PixCorr does not saturate on small validation splits, as pixel identification does
    best_metric: str = "pixcorr"
    best_min_delta: float = 0.001  # an improvement must exceed this to reset early stopping
    presentation_average_k: int = 1  # train on means of k presentations, scaled by sqrt(k)
    presentation_average_prob: float = 1.0  # fraction of samples averaged (others single)
    max_minutes: float = 0.0  # stop (with a snapshot) after this much training time (0 = off)
    ema_decay: float = 0.0  # exponential moving average of the generator weights (0 = off)
    # Shared runs: equal (each batch split equally between the subjects) | proportional
    # (samples drawn uniformly from all subjects' samples)
    subject_mix: str = "equal"
    # Adapting a source generator to a new subject (--from): a shared or one-subject run
    # folder, or a generator file (.pt, .caffemodel); its layers after the first are kept
    adapt_from: str = ""
    # the new input layer: ridge (as first_layer_init) | activations | encoding | auto
    adapt_init: str = "ridge"
    adapt_freeze_iters: int = 0  # iterations with the source's layers frozen
    # then those layers train at train.lr x this (0: frozen for the whole run)
    adapt_finetune_lr_scale: float = 0.0
    # The source subjects' training files (--source-fmri), for the fitted starts: needed
    # with a generator file that carries none (a released .caffemodel); otherwise
    # they replace the files the source run was trained on
    adapt_source_fmri: tuple[str, ...] = ()
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    precision: str = "auto"  # auto | fp32 | bf16
    channels_last: bool = True
    compile: bool = False


@dataclass(frozen=True)
class ReconConfig:
    """Test-time procedure."""

    scale: str = "sqrt_n"  # "sqrt_n" (sqrt of the trials averaged) or a fixed number, e.g. "4.9"
    clip_percent: float = 0.04  # extreme pixel values clipped for display (half each side)
    batch_size: int = 64


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings."""

    resolution_px: int = 64  # common resolution for the second pixel-identification figure
    bootstrap_samples: int = 1000
    ci_level: float = 0.95
    feature_network: str = "efficientnet-lite2"


@dataclass(frozen=True)
class Config:
    """One complete run description."""

    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    recon: ReconConfig = field(default_factory=ReconConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def preset_names() -> list[str]:
    """Names of the presets shipped with the package (``paper``, ``demo``, ...)."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_config(
    preset_or_path: str | Path = "paper", overrides: typing.Sequence[str] = ()
) -> Config:
    """Load a preset or YAML file and apply ``section.key=value`` overrides.

    Parameters
    ----------
    preset_or_path : str or Path
        A preset name (see :func:`preset_names`) or the path of a YAML file.
    overrides : sequence of str
        Items like ``"train.batch_size=8"``; values are parsed as YAML.

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        Unknown preset or file, a key typo (the nearest valid key is named), or a
        value of the wrong type.
    """
    raw = _read_yaml(_resolve_source(preset_or_path))
    for item in overrides:
        _apply_override(raw, item)
    return from_dict(raw)


def with_overrides(cfg: Config, overrides: typing.Sequence[str]) -> Config:
    """Return a copy of ``cfg`` with ``section.key=value`` overrides applied."""
    raw = to_dict(cfg)
    for item in overrides:
        _apply_override(raw, item)
    return from_dict(raw)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config (tuples become lists, as in YAML)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def dump_yaml(cfg: Config) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def save_config(cfg: Config, path: Path) -> None:
    """Write the config as YAML, atomically."""
    atomic_write_text(path, dump_yaml(cfg))


def from_dict(raw: dict[str, Any]) -> Config:
    """Build a validated :class:`Config` from a nested dict (missing keys take defaults)."""
    return _build(Config, raw, prefix="")


def _resolve_source(preset_or_path: str | Path) -> Path:
    """The YAML file behind a preset name or a path.

    A bare word is always a preset name, even when a file or folder of that name exists
    in the working directory (``--config small`` must not pick up a folder ``small/``);
    a file is named with a path separator or a ``.yaml``/``.yml`` suffix.
    """
    text = str(preset_or_path)
    path = Path(preset_or_path)
    looks_like_file = path.suffix in (".yaml", ".yml") or any(
        sep in text for sep in {os.sep, "/", os.altsep or "/"}
    )
    if looks_like_file:
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    preset = PRESETS_DIR / f"{text}.yaml"
    if not preset.is_file():
        hint = (
            f"; to use the file {text!r} in this folder, write ./{text}"
            if path.is_file()
            else " or give the path of a YAML file"
        )
        raise ConfigError(
            f"unknown preset {text!r}: choose one of {', '.join(preset_names())}{hint}"
        )
    return preset


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(
            f"config file {path} is not a text file (not UTF-8); give a YAML config file"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of sections, not {type(raw).__name__}"
        )
    return raw


def _apply_override(raw: dict[str, Any], item: str) -> None:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"override {item!r} must look like section.key=value, e.g. train.batch_size=8"
        )
    value = yaml.safe_load(text) if text.strip() else ""
    *sections, leaf = key.split(".")
    node = raw
    for section in sections:
        child = node.setdefault(section, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {section!r} is a value, not a section")
        node = child
    node[leaf] = value


def _nearest(name: str, valid: typing.Iterable[str], prefix: str) -> str:
    match = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    return f"; did you mean '{prefix}{match[0]}'?" if match else ""


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(raw, dict):
        raise ConfigError(f"config section {where} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in names:
            raise ConfigError(
                f"unknown config key '{prefix}{key}'{_nearest(str(key), names, prefix)} "
                f"(valid keys in {where}: {', '.join(sorted(names))})"
            )
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(typing.cast(type, hint), value, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, hint, f"{prefix}{key}")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        items = value if isinstance(value, list | tuple) else [value]
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in items)
        if len(items) != len(args):
            raise ConfigError(f"config key {key!r} needs {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(items, args, strict=True))
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if hint is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(
            f"config key {key!r} must be of type {hint.__name__}, got {value!r} "
            f"({type(value).__name__})"
        )
    return value
