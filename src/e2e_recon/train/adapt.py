"""Adapting a source generator to a new subject (``train.adapt_from``, ``--config adapt``).

The source is a shared run folder, a one-subject run folder, or a generator file (the
project's ``.pt``, shared or not, or a released ``.caffemodel``, a one-subject shared
generator). Its layers after the first are the shared part; the architecture (fully
connected width, output size, channels, colour) and the image geometry (resize and crop:
the source's config, or the published 248 -> 227 px for a released generator) come from
it. The new subject gets an input layer of its own, started

- ``ridge`` (``train.adapt_init``): as the ``small`` recipe starts its first layer (the
  ridge decoder's voxel weights in the leading rows; He-random rows after them), with
  the bias of the source's input layers (their mean);
- ``activations``: fitted by ridge regression from the new subject's voxels to the
  shared layers' input for the same images, the mean over the source subjects of their
  input layers' outputs (pre-activation) for those images. This needs the source
  subjects' training files (those the source run was trained on, named in its config,
  or ``train.adapt_source_fmri``, which a released generator needs) and images both
  have seen;
- ``encoding``: the inverse of a forward model from that shared code to each of the new
  subject's voxels (``train/encoding_init.py``); the same needs as ``activations``;
- ``auto``: ``encoding`` where the source allows it, else ``ridge`` (the log says why).

Training then runs in two stages (:class:`AdaptStages`): the source's layers frozen for
``train.adapt_freeze_iters`` iterations (their learning rate 0: the gradient still flows
through them to the input layer, and DDP sees the same parameters every step), then
trained at ``train.lr x train.adapt_finetune_lr_scale`` (0: frozen for the whole run).
The input layer trains at ``train.lr`` throughout. The stage follows from the iteration
alone, so resuming is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from e2e_recon.config import Config, from_dict, load_config
from e2e_recon.data.home import subject_in_file_name
from e2e_recon.errors import ConfigError, DataError, ModelFormatError
from e2e_recon.nets.shared import INPUT_PREFIX, is_shared_arch, shared_layers, single_to_file
from e2e_recon.runs import warn
from e2e_recon.train.encoding_init import encoding_fit
from e2e_recon.train.multi_config import subject_files
from e2e_recon.train.priors import first_linear, init_first_layer
from e2e_recon.train.step import Optimisers

#: The source's layers are the optimiser's third group (see ``step.build_optimisers``).
SHARED_GROUP = 2
#: Ridge penalty of the activation fit, relative to the mean voxel variance x samples.
ACTIVATION_ALPHA = 1.0
_ARCH_KEYS = ("fc_width", "output_size_px", "base_channels", "leaky_slope")


@dataclass
class AdaptSource:
    """What a source generator gives the new subject's generator."""

    path: Path  # the generator file read
    arch: dict[str, Any]  # the shared generator file's arch (``subjects``: voxel counts)
    state: dict[str, torch.Tensor]  # named form: inputs.<subject>.* and the shared layers
    run_dir: Path | None = None  # the source's run folder, when it is one
    config: dict[str, Any] | None = None  # the config the source was trained with, if known
    # each subject's voxel statistics (NormStats.to_dict) as the source was trained, if known
    norms: dict[str, Any] = field(default_factory=dict)

    @property
    def subjects(self) -> list[str]:
        return list(self.arch["subjects"])

    def input_layer(self, subject: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A source subject's input layer: weight (F, V_s), bias (F,)."""
        prefix = f"{INPUT_PREFIX}{subject}."
        return self.state[prefix + "weight"], self.state[prefix + "bias"]


def _generator_file(path: Path) -> tuple[Path, Path | None]:
    """The generator file of a run folder (best.pt, else generator.pt), or the file itself."""
    if path.is_file():
        return path, None
    if not path.is_dir():
        raise ModelFormatError(
            f"--from {path}: no such file or folder (give a run folder, a generator .pt or "
            "a .caffemodel)"
        )
    for name in ("best.pt", "generator.pt"):
        if (path / name).is_file():
            return path / name, path
    raise ModelFormatError(
        f"--from {path}: the folder holds no best.pt or generator.pt (train it to the end, "
        "or give a generator file)"
    )


def read_source(spec: str) -> AdaptSource:
    """Read ``train.adapt_from`` as a one- or several-subject shared generator."""
    from e2e_recon.nets.loading import load_generator, read_network_file

    path, run_dir = _generator_file(Path(spec))
    if path.suffix.lower() == ".caffemodel":
        arch, state = single_to_file(load_generator(path), "source")
        return AdaptSource(path, arch, state, run_dir)
    payload = read_network_file(path, "generator")
    config = dict(payload.get("meta", {}).get("config") or {}) or None
    norm = payload.get("norm") or {}
    if is_shared_arch(payload["arch"]):
        arch, state = dict(payload["arch"]), dict(payload["state_dict"])
        return AdaptSource(path, arch, state, run_dir, config, dict(norm.get("subjects", {})))
    name = str((config or {}).get("data", {}).get("subject") or "source")
    arch, state = single_to_file(load_generator(path), name)
    return AdaptSource(path, arch, state, run_dir, config, {name: norm} if norm else {})


def source_geometry(source: AdaptSource) -> tuple[int, int]:
    """``(image_size_px, crop_px)`` the source was trained with; for a file without its
    config (a released generator), the published crop and ratio (256 px -> 227 of 248)."""
    data = (source.config or {}).get("data", {})
    if "image_size_px" in data and "crop_px" in data:
        return int(data["image_size_px"]), int(data["crop_px"])
    size = int(source.arch["output_size_px"])
    crop = 227 if size == 256 else size
    return max(crop, round(crop * 248 / 227)), crop


def adapted_config(cfg: Config, source: AdaptSource) -> Config:
    """``cfg`` with the architecture, colour and image geometry of the source generator."""
    model = replace(cfg.model, **{k: source.arch[k] for k in _ARCH_KEYS if k in source.arch})
    colour = str(source.arch.get("colour", cfg.data.colour))
    size, crop = source_geometry(source)
    data = replace(cfg.data, colour=colour, image_size_px=size, crop_px=crop)
    return replace(cfg, model=model, data=data)


@torch.no_grad()
def init_adapted(generator: nn.Module, source: AdaptSource, data: Any, cfg: Config) -> str:
    """Load the source's shared layers and start the new input layer; say how it started."""
    own = generator.state_dict()
    shared = shared_layers(source.state)
    missing = [k for k in own if not k.startswith("defc7.") and k not in shared]
    if missing:
        raise ModelFormatError(f"{source.path}: the source generator lacks {missing[0]}")
    generator.load_state_dict({**own, **shared}, strict=True)
    layer = first_linear(generator)
    start, why_not = cfg.train.adapt_init, ""
    if start == "auto":
        start = "encoding"
        try:
            weight, bias, note = encoding_start(source, data, cfg)
        except (ConfigError, DataError) as error:  # a source or images it cannot use
            start, why_not = "ridge", f" (no encoding start: {error})"
            # On the terminal too: the encoding start is the measured default, and the
            # message says how to get it (usually --source-fmri).
            warn(
                "the new input layer starts from the ridge decoder, not the encoding start: "
                f"{error}"
            )
    elif start in ("activations", "encoding"):
        fit = activation_fit if start == "activations" else encoding_start
        weight, bias, note = fit(source, data, cfg)
    if start != "ridge":
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
        return note
    rows = init_first_layer(generator, data, "ridge", cfg.data.crop_px)
    biases = torch.stack([source.input_layer(s)[1] for s in source.subjects])  # (S, F)
    layer.bias.copy_(biases.mean(dim=0))
    return (
        f"input layer: {rows} rows from the ridge decoder, bias of the source's input "
        f"layers{why_not}"
    )


def matched_samples(
    source: AdaptSource, data: Any, cfg: Config
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The new subject's samples of images the source subjects saw, with their shared code.

    Returns the voxels ``(n, V)``, the source subjects' mean input activations of each
    sample's image ``(n, F)`` and those of every source image ``(M, F)``.
    """
    targets, ids = source_activations(source, cfg)  # (M, F), (M,)
    lookup = {float(i): k for k, i in enumerate(ids)}
    image_ids = np.asarray(data.stimulus_ids)[np.asarray(data.image_index)]  # (N,)
    rows = np.array([float(i) in lookup for i in image_ids])
    if rows.sum() < 2:
        raise DataError(
            f"train.adapt_init={cfg.train.adapt_init} needs images that the source subjects "
            f"saw too; none of the new subject's training images is among "
            f"those of {source.path}'s subjects: use train.adapt_init=ridge"
        )
    x = np.asarray(data.voxels, dtype=np.float64)[rows]  # (n, V)
    y = targets[[lookup[float(i)] for i in image_ids[rows]]]  # (n, F)
    return x, y, targets


def encoding_start(
    source: AdaptSource, data: Any, cfg: Config
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The encoding start (``train/encoding_init.py``) on the new subject's matched samples."""
    return encoding_fit(*matched_samples(source, data, cfg))


def activation_fit(
    source: AdaptSource, data: Any, cfg: Config
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Ridge from the new subject's voxels to the source subjects' mean input activations.

    Returns the weight ``(F, V)``, the bias ``(F,)`` and a one-line note.
    """
    x, y, _ = matched_samples(source, data, cfg)  # (n, V), (n, F)
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - x_mean, y - y_mean
    gram = xc @ xc.T  # (n, n): the dual form, n samples << V voxels
    alpha = ACTIVATION_ALPHA * float(np.trace(gram)) / len(x)
    dual = np.linalg.solve(gram + alpha * np.eye(len(x)), yc)  # (n, F)
    weight = (xc.T @ dual).T  # (F, V)
    bias = y_mean - weight @ x_mean  # (F,)
    note = f"input layer: ridge fit to the source's input activations on {len(x)} samples"
    return torch.from_numpy(weight).float(), torch.from_numpy(bias).float(), note


def source_activations(source: AdaptSource, cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """Mean over source subjects of their input layers' output for each image they saw.

    Returns ``(M, F)`` pre-activations and the ``(M,)`` stimulus ids.
    """
    sums: dict[float, np.ndarray] = {}
    counts: dict[float, int] = {}
    for subject, responses, ids in source_responses(source, cfg):  # (M_s, V_s), (M_s,)
        weight, bias = (t.double().numpy() for t in source.input_layer(subject))
        codes = responses @ weight.T + bias  # (M_s, F)
        for key, code in zip(ids.tolist(), codes, strict=True):
            sums[key] = sums.get(key, 0.0) + code
            counts[key] = counts.get(key, 0) + 1
    ids = np.array(sorted(sums))
    return np.stack([sums[i] / counts[i] for i in ids]), ids


def source_responses(source: AdaptSource, cfg: Config) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(subject, responses (M, V), stimulus ids (M,))`` of each source subject at hand.

    Each image's mean response over its presentations, z-scored with the statistics the
    source was trained with (its voxels: a voxel selection or a non-finite drop), or for
    a generator without them (a released one) with the whole training file, as the
    published procedure does.
    """
    from e2e_recon.data.dataset import NormStats, training_responses

    data, files = source_training_files(source, cfg)
    out = []
    for subject, path in files:
        stored = source.norms.get(subject)
        norm = NormStats.from_dict(stored) if stored else None
        roi = norm.roi if norm is not None else data.roi
        responses, ids = training_responses(path, roi, data.drop_nonfinite_voxels, norm)
        expected = int(source.input_layer(subject)[0].shape[1])
        if responses.shape[1] != expected:
            raise DataError(
                f"{path}: selection {roi!r} gives {responses.shape[1]} voxel columns, but "
                f"{source.path}'s input layer for {subject} takes {expected}: give that "
                "subject's training file (--source-fmri) and the ROI it was trained with"
            )
        out.append((subject, responses.astype(np.float64), ids))
    return out


def source_training_files(source: AdaptSource, cfg: Config) -> tuple[Any, list[tuple[str, str]]]:
    """The data settings (ROI) and ``(subject, training file)`` of the source's subjects.

    ``train.adapt_source_fmri`` when given (matched to the source's subjects by file name,
    or the one file of a one-subject source); else the files the source run was trained
    on, from its config.
    """
    known = _source_config(source)
    data = (known or cfg).data
    given = list(cfg.train.adapt_source_fmri)
    if given:
        return data, _match_source_files(source, given)
    if known is None:
        raise ConfigError(
            f"train.adapt_init={cfg.train.adapt_init} needs the source subjects' responses, "
            f"and {source.path} names no training files: give each source subject's training "
            f"file with --source-fmri ({', '.join(source.subjects)}), or use "
            "train.adapt_init=ridge"
        )
    if known.model.shared:
        files = subject_files(known)
    else:
        files = [(source.subjects[0], known.data.train_fmri)]
    for subject, path in files:
        if not Path(path).is_file():
            raise DataError(
                f"{path}: the training file of the source's {subject} (from its config) is "
                "not there: give the source subjects' training files with --source-fmri, or "
                "use train.adapt_init=ridge"
            )
    return data, files


def _source_config(source: AdaptSource) -> Config | None:
    """The config the source was trained with: its run folder's, else its file's."""
    if source.run_dir is not None and (source.run_dir / "config.yaml").is_file():
        return load_config(source.run_dir / "config.yaml")
    return from_dict(source.config) if source.config else None


def _match_source_files(source: AdaptSource, files: list[str]) -> list[tuple[str, str]]:
    """Each ``--source-fmri`` file with the source subject it belongs to."""
    subjects = source.subjects
    if len(subjects) == 1 and len(files) == 1:
        return [(subjects[0], files[0])]
    matched = []
    for path in files:
        name = subject_in_file_name(path)
        if name not in subjects:
            raise ConfigError(
                f"{path}: --source-fmri files are matched to the source's subjects "
                f"({', '.join(subjects)}) by the name they start with; this one starts with "
                f"{name or 'no subject'}: rename it (sub-01_...)"
            )
        matched.append((str(name), path))
    return matched


class AdaptStages:
    """The learning rate of the source's layers, by iteration (frozen, then fine-tuned)."""

    def __init__(self, cfg: Config) -> None:
        t = cfg.train
        self.freeze_iters = int(t.adapt_freeze_iters)
        self.finetune_lr = float(t.lr * t.adapt_finetune_lr_scale)

    def rate(self, iteration: int) -> float:
        """Base rate of the source's layers at ``iteration`` (0-based)."""
        return 0.0 if iteration < self.freeze_iters else self.finetune_lr

    def apply(self, opt: Optimisers, iteration: int) -> None:
        """Set the rate the next generator update uses."""
        opt.generator_schedule.set_base_lr(SHARED_GROUP, self.rate(iteration))
