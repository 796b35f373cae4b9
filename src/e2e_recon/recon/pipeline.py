"""Reconstruction from files: models, statistics, test sets and the ridge baseline.

:func:`reconstruct_run` serves a run directory (the demo and ``e2e-recon
reconstruct --generator RUN_DIR``); :func:`reconstruct_cli` serves any model
file with test files given by path or found in the data home.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from e2e_recon.config import Config, load_config
from e2e_recon.data.dataset import (
    NormStats,
    TestSet,
    TrainingSet,
    load_test_set,
    load_training_set,
    training_norm_stats,
)
from e2e_recon.data.images import center_crop_uint8
from e2e_recon.device import resolve_device
from e2e_recon.errors import DataError
from e2e_recon.recon.baselines import RidgeDecoder
from e2e_recon.recon.reconstruct import (
    ReconModel,
    load_recon_models,
    reconstruct,
    write_index,
    write_set,
)
from e2e_recon.runs import get_logger

DEFAULT_ROI = "ROI_VC = 1"


def fit_ridge(training: TrainingSet, crop_px: int, decode_px: int = 64) -> RidgeDecoder:
    """Fit the ridge pixel decoder on the centre crops of the training images."""
    crops = center_crop_uint8(np.asarray(training.images), crop_px)  # (M, c, c, 3) BGR
    decoder = RidgeDecoder(decode_px=min(decode_px, crop_px))
    return decoder.fit(training.voxels, crops, training.image_index)


def ridge_reconstruct(
    decoder: RidgeDecoder, test_sets: Sequence[TestSet], out_dir: Path
) -> list[dict[str, str]]:
    """Write the ridge baseline's reconstructions (unscaled averages: the decoder is linear)."""
    rows: list[dict[str, str]] = []
    for test_set in test_sets:
        bgr = decoder.predict(test_set.voxels)  # (M, c, c, 3), channel order of the fit: BGR
        rows += write_set(out_dir, "ridge", test_set, np.ascontiguousarray(bgr[..., ::-1]))
    return rows


def reconstruct_run(
    run_dir: Path, cfg: Config | None = None, ridge: bool = True, device: str = ""
) -> Path:
    """Reconstruct every test set of a run with its generator (and the ridge baseline).

    Writes ``RUN_DIR/recon/index.csv`` and the image files; returns the recon folder.
    """
    cfg = cfg or load_config(run_dir / "config.yaml")
    log = get_logger()
    out_dir = run_dir / "recon"
    models = load_recon_models(run_dir)
    data = cfg.data
    training = None
    norm = models[0].norm
    if ridge or norm is None:
        training = load_training_set(
            data.train_fmri, data.images_dir, data.roi, data.image_size_px, data.cache_dir or None,
            data.train_images, data.val_images, cfg.train.seed, data.drop_nonfinite_voxels,
        )  # fmt: skip
        norm = norm or training.norm
    test_sets = _test_sets(data.test_fmri, data.roi, norm, data.images_dir or None, data)
    dev = resolve_device(device or cfg.train.device)
    index = reconstruct(
        models, test_sets, out_dir, dev, cfg.recon.scale, cfg.recon.clip_percent,
        cfg.recon.batch_size,
    )  # fmt: skip
    if ridge and training is not None:
        log.info("fitting the ridge baseline on %d samples", len(training.voxels))
        decoder = fit_ridge(training, data.crop_px)
        index = write_index(out_dir, ridge_reconstruct(decoder, test_sets, out_dir))
    log.info("reconstructions indexed in %s", index)
    return out_dir


def reconstruct_cli(
    generator: str,
    test_fmri: Sequence[Path],
    train_fmri: Path | None,
    roi: str,
    subject: str | None,
    out: Path,
    ridge: bool,
    images_dir: Path | None,
    device: str,
) -> Path:
    """``e2e-recon reconstruct``: any model, test files by path or from the data home."""
    generator_path, test_files, train_file = _resolve_inputs(
        generator, test_fmri, train_fmri, subject
    )
    if generator_path.is_dir() and (generator_path / "config.yaml").is_file() and not test_files:
        return reconstruct_run(generator_path, ridge=ridge, device=device) / "index.csv"
    models = load_recon_models(generator_path)
    roi = roi or (models[0].norm.roi if models[0].norm else "") or DEFAULT_ROI
    norm = models[0].norm or _norm_from_training(train_file, roi)
    _check_roi(models[0], norm, roi)
    test_sets = [load_test_set(p, None, roi, norm) for p in test_files]
    index = reconstruct(models, test_sets, out, resolve_device(device))
    if ridge:
        if train_file is None or images_dir is None:
            raise DataError("--ridge needs --train-fmri and --images (the training images)")
        crop = models[0].crop_px
        training = load_training_set(train_file, images_dir, roi, crop)
        index = write_index(out, ridge_reconstruct(fit_ridge(training, crop), test_sets, out))
    return index


def _resolve_inputs(
    generator: str, test_fmri: Sequence[Path], train_fmri: Path | None, subject: str | None
) -> tuple[Path, list[Path], Path | None]:
    test_files = list(test_fmri)
    if subject:
        from e2e_recon.data.home import resolve_subject_files

        found = resolve_subject_files(subject, require=() if generator else ("generator",))
        generator = generator or str(found["generator"])
        if not test_files:
            test_files = [p for k in ("test", "artificial", "letters") if (p := found.get(k))]
        train_fmri = train_fmri or found.get("training")
    if not generator:
        raise DataError("give --generator MODEL, or --subject to use the released model")
    if not test_files and not (Path(generator) / "config.yaml").is_file():
        raise DataError("give --test-fmri FILE (repeatable), or --subject to find them")
    return Path(generator), test_files, train_fmri


def _norm_from_training(train_file: Path | None, roi: str) -> NormStats:
    if train_file is None:
        raise DataError(
            "this model carries no training statistics (a released Caffe model): give "
            "--train-fmri TRAINING.h5 so test patterns are z-scored as in training"
        )
    return training_norm_stats(train_file, roi)


def _check_roi(model: ReconModel, norm: NormStats, roi: str) -> None:
    n_in = getattr(model.net, "n_voxels", None)
    if n_in is not None and int(n_in) != norm.mean.size:
        raise DataError(
            f"the generator takes {n_in} voxels but {roi!r} selects {norm.mean.size}: use the "
            "ROI the model was trained with"
        )


def _test_sets(
    files: Sequence[str], roi: str, norm: NormStats, images_dir: str | None, data: object
) -> list[TestSet]:
    if not files:
        raise DataError("the config lists no test files (data.test_fmri): nothing to reconstruct")
    size = int(getattr(data, "image_size_px", 248))
    return [load_test_set(p, images_dir, roi, norm, size) for p in files]
