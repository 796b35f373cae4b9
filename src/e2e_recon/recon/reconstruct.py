"""The published test-time procedure, and the files it writes.

1. Select ROI voxels of a test file and average all presentations of each image.
2. z-score with the training statistics (from the model when it carries them).
3. Multiply by sqrt(n), n the number of presentations averaged (4.9 for 24).
4. Generator forward; centre-crop the output (256 -> 227 for the paper).
5. Back to RGB 0-255.
6. Save the raw array (.mat, variable ``gen_img``) and a display image with the
   most extreme 0.04% of values clipped (.tif and .png); index them in a CSV.
7. Given a folder of snapshots, do this for every snapshot.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import torch
from PIL import Image
from torch import nn

from e2e_recon.data.dataset import NormStats, TestSet
from e2e_recon.data.geometry import ImageGeometry
from e2e_recon.data.images import caffe_to_rgb_float, display_image
from e2e_recon.errors import DataError, ModelFormatError
from e2e_recon.fileio import atomic_path, path_inside, safe_name
from e2e_recon.nets.generator import center_crop

INDEX_COLUMNS = ("method", "set", "stimulus_id", "stimulus_name", "n_trials", "mat", "tif", "png")


@dataclass
class ReconModel:
    """A generator ready for the test-time procedure."""

    method: str  # label in the index, e.g. "e2e" or "e2e@iter0010000"
    net: nn.Module
    norm: NormStats | None  # training statistics stored with the model, if any
    crop_px: int
    geometry: ImageGeometry = field(default_factory=ImageGeometry)  # how its targets were made


def scale_factors(n_trials: np.ndarray, scale: str) -> np.ndarray:
    """Test-time multipliers: sqrt of the trials averaged, or one fixed number.

    Parameters
    ----------
    n_trials : ndarray, shape (M,)
    scale : str
        ``"sqrt_n"`` or a number such as ``"4.9"``.
    """
    if scale == "sqrt_n":
        return np.sqrt(n_trials.astype(np.float64)).astype(np.float32)
    try:
        value = float(scale)
    except ValueError:
        raise DataError(f"recon.scale must be 'sqrt_n' or a number, got {scale!r}") from None
    return np.full(len(n_trials), value, dtype=np.float32)


@torch.no_grad()
def generate(
    model: ReconModel, voxels: np.ndarray, device: torch.device, batch_size: int = 64
) -> np.ndarray:
    """Run the generator and return cropped images as RGB float, 0-255 scale, unclipped.

    Parameters
    ----------
    voxels : ndarray, shape (M, V), already normalised and scaled

    Returns
    -------
    ndarray, shape (M, crop, crop, 3), float32
    """
    n_inputs = _generator_inputs(model.net)
    if n_inputs is not None and voxels.shape[1] != n_inputs:
        raise DataError(
            f"the generator takes {n_inputs} voxels but the selection gives {voxels.shape[1]}: "
            "use the ROI the model was trained with (--roi) or the matching model"
        )
    net = model.net.to(device).eval()
    outputs = []
    for start in range(0, len(voxels), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(voxels[start : start + batch_size])).to(device)
        images = center_crop(net(x.float()), model.crop_px)  # (B, 3, crop, crop), Caffe space
        outputs.append(caffe_to_rgb_float(images.float().cpu().numpy()))
    return np.concatenate(outputs, axis=0)


def write_set(
    out_dir: Path,
    method: str,
    test_set: TestSet,
    images: np.ndarray,
    clip_percent: float = 0.04,
) -> list[dict[str, str]]:
    """Write one method's reconstructions of one test set; return their index rows.

    ``images`` is (M, S, S, 3) RGB, or (M, S, S, 1) grey: then the ``.mat`` holds the
    grey values in three equal channels (the published ``gen_img`` layout) and the
    ``.tif`` and ``.png`` are 8-bit greyscale.
    """
    grey = images.shape[-1] == 1
    if grey:
        images = np.repeat(images, 3, axis=-1)  # (M, S, S, 3), equal channels
    folder, names = output_names(out_dir, method, test_set)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, name in enumerate(names):
        stem = folder / name
        with atomic_path(stem.with_suffix(".mat")) as tmp:
            _save_mat(tmp, images[i])
        shown_rgb = display_image(images[i], clip_percent)  # (S, S, 3) uint8
        shown = Image.fromarray(shown_rgb[..., 0] if grey else shown_rgb)  # mode L or RGB
        for suffix, image_format in ((".tif", "TIFF"), (".png", "PNG")):
            with atomic_path(stem.with_suffix(suffix)) as tmp:
                shown.save(tmp, format=image_format)
        rel = stem.relative_to(out_dir).as_posix()
        rows.append(
            {
                "method": method,
                "set": test_set.set_name,
                "stimulus_id": f"{test_set.stimulus_ids[i]:.6f}",
                "stimulus_name": name,
                "n_trials": str(int(test_set.n_trials[i])),
                "mat": rel + ".mat",
                "tif": rel + ".tif",
                "png": rel + ".png",
            }
        )
    return rows


def output_names(out_dir: Path, method: str, test_set: TestSet) -> tuple[Path, list[str]]:
    """The folder of one method's reconstructions of a set, and its file stems.

    Each part comes from a file (a set name in a BData header, a stimulus name) or a
    model's file name: every one must be a plain file name, and every path must stay
    inside ``out_dir`` (DataError otherwise, before anything is written).
    """
    where = f"reconstructions of test set {test_set.set_name!r}"
    parts = [safe_name(method, f"{where}: method"), safe_name(test_set.set_name, "test set")]
    names = [safe_name(n, f"{where}: stimulus name") for n in test_set.stimulus_names]
    for name in names:
        path_inside(Path(*parts, name), out_dir, f"{where}: file")
    return path_inside(Path(*parts), out_dir, f"{where}: folder"), names


def write_index(out_dir: Path, rows: Iterable[dict[str, str]]) -> Path:
    """Write ``index.csv``, merging with rows of other methods already there."""
    path = out_dir / "index.csv"
    new_rows = list(rows)
    replaced = {(r["method"], r["set"]) for r in new_rows}
    kept = (
        [r for r in read_index(path) if (r["method"], r["set"]) not in replaced]
        if path.exists()
        else []
    )

    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows(kept + new_rows)
    return path


def read_index(path: Path) -> list[dict[str, str]]:
    """Rows of a reconstruction ``index.csv``; DataError if missing, empty or lacking columns."""
    if not path.is_file():
        raise DataError(f"{path} not found: run 'e2e-recon reconstruct --out {path.parent}' first")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        missing = [c for c in INDEX_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path}: columns {missing} missing; expected {list(INDEX_COLUMNS)}")
    if not rows:
        raise DataError(f"{path} lists no reconstructions")
    return rows


def reconstruct(
    models: Sequence[ReconModel],
    test_sets: Sequence[TestSet],
    out_dir: Path,
    device: torch.device,
    scale: str = "sqrt_n",
    clip_percent: float = 0.04,
    batch_size: int = 64,
) -> Path:
    """Reconstruct every test set with every model and write files plus ``index.csv``.

    The test sets must already be normalised (z-scored, unscaled averages); the
    test-time scale is applied here.
    """
    for model in models:  # refuse a name that would lead outside out_dir before any write
        for test_set in test_sets:
            output_names(out_dir, model.method, test_set)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    for model in models:
        for test_set in test_sets:
            _require_nonempty(test_set)
            voxels = test_set.voxels * scale_factors(test_set.n_trials, scale)[:, None]
            images = generate(model, voxels, device, batch_size)  # (M, crop, crop, 3)
            if model.geometry.colour == "grey":
                images = images[..., :1]  # the generator's three channels are equal
            rows += write_set(out_dir, model.method, test_set, images, clip_percent)
    return write_index(out_dir, rows)


def load_recon_models(
    spec: Path, prototxt: Path | None = None, subject: str | None = None
) -> list[ReconModel]:
    """Models named by ``spec``: a model file, a run folder, or a folder of snapshots.

    A run folder gives its final generator; a folder of ``.pt``/``.caffemodel``
    snapshots gives one model per snapshot, labelled ``e2e@<snapshot name>``. A shared
    generator gives ``subject``'s input layer and statistics (see ``load_generator``).
    """
    from e2e_recon.nets.loading import load_generator

    files = _model_files(spec)
    single = len(files) == 1
    models = []
    for path in files:
        net = load_generator(path, prototxt, subject=subject)
        norm, crop, geometry = _model_extras(path, net)
        method = "e2e" if single else f"e2e@{path.stem}"
        models.append(ReconModel(method, net, norm, crop, geometry))
    return models


def _model_files(spec: Path) -> list[Path]:
    if spec.is_file():
        return [spec]
    if not spec.is_dir():
        raise ModelFormatError(
            f"generator {spec} does not exist: give a .pt, a .caffemodel, a run folder or a "
            "folder of snapshots"
        )
    for name in ("best.pt", "generator.pt"):
        if (spec / name).is_file():
            return [spec / name]
    snapshots = sorted(spec.glob("*.caffemodel")) or sorted(
        p for p in spec.glob("*.pt") if p.name != "latest.pt"
    )
    if not snapshots:
        raise ModelFormatError(
            f"no generator found in {spec} (looked for best.pt, generator.pt, "
            "snapshots *.pt or *.caffemodel)"
        )
    return snapshots


def _model_extras(path: Path, net: nn.Module) -> tuple[NormStats | None, int, ImageGeometry]:
    """Statistics, output crop and target geometry a model file carries (or the paper's)."""
    size = int(getattr(net, "output_size_px", 256))
    default_crop = 227 if size == 256 else size
    norm: NormStats | None = None
    trained_cfg: dict[str, Any] = {}
    crop = default_crop
    if path.suffix == ".pt":
        blob = torch.load(path, map_location="cpu", weights_only=True)
        blob = blob if isinstance(blob, dict) else {}
        stats = blob.get("norm")
        if isinstance(stats, dict) and "subjects" in stats:  # a shared generator's, by subject
            stats = stats["subjects"].get(getattr(net, "subject", None))
        norm = NormStats.from_dict(stats) if stats else None
        meta = blob.get("meta", {})
        trained_cfg = meta.get("config") or blob.get("config") or {}  # .pt or snapshot
        crop = int(meta.get("crop_px", trained_cfg.get("data", {}).get("crop_px", crop)))
    if trained_cfg:
        geometry = ImageGeometry.from_config_dict(trained_cfg, f"the config stored in {path}")
    else:  # a published or converted model: its crop, resized in the paper's ratio
        resize = max(crop, round(crop * 248 / 227))
        geometry = ImageGeometry(resize, crop, source=f"{path.name} (no config; paper ratio)")
    # The generator's own output decides: a grey generator is scored and shown in grey.
    colour = str(getattr(net, "colour", geometry.colour))
    return norm, crop, replace(geometry, colour=colour) if colour != geometry.colour else geometry


def _generator_inputs(net: nn.Module) -> int | None:
    n = getattr(net, "n_voxels", None)
    return int(n) if n is not None else None


def _require_nonempty(test_set: TestSet) -> None:
    if len(test_set.stimulus_ids) == 0:
        raise DataError(f"test set {test_set.set_name!r} holds no stimulus")


def _save_mat(path: Path, image: np.ndarray) -> None:
    # float32 as the generator computes it, uncompressed as the original wrote it:
    # zlib took most of the reconstruction time. The temporary name keeps ".mat",
    # since savemat appends it to names without it.
    scipy.io.savemat(path, {"gen_img": image.astype(np.float32)})
