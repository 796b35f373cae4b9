"""Reconstruction from files: models, statistics, test sets and the ridge baseline.

:func:`reconstruct_run` serves a run directory (the demo and ``e2e-recon
reconstruct --generator RUN_DIR``); :func:`reconstruct_cli` serves any model
file with test files given by path or found in the data home.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
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
from e2e_recon.data.geometry import ImageGeometry, write_geometry
from e2e_recon.data.images import grey_uint8
from e2e_recon.device import resolve_device
from e2e_recon.errors import DataError
from e2e_recon.fileio import staged_folder
from e2e_recon.recon.baselines import RidgeDecoder
from e2e_recon.recon.reconstruct import (
    ReconModel,
    load_recon_models,
    reconstruct,
    write_index,
    write_set,
)
from e2e_recon.recon.records import check_geometry, check_out_folder, write_ridge_record
from e2e_recon.runs import get_logger

DEFAULT_ROI = "ROI_VC = 1"


def fit_ridge(
    training: TrainingSet,
    geometry: ImageGeometry,
    norm: NormStats | None = None,
    decode_px: int = 64,
) -> RidgeDecoder:
    """Fit the ridge pixel decoder on the generator's own targets.

    Parameters
    ----------
    training : TrainingSet
        The samples and images the generator was trained on (its validation split
        held out), images resized to ``geometry.image_size_px``.
    geometry : ImageGeometry
        Targets are the centre crops the generator's output is compared with; in grey
        mode their luminance, one channel (the decoder then predicts one channel).
    norm : NormStats, optional
        The statistics the test patterns are z-scored with (the generator's); the
        training patterns are brought to the same statistics first.
    """
    crops = geometry.target_crops(np.asarray(training.images))  # (M, c, c, 3) BGR
    if geometry.colour == "grey":
        crops = grey_uint8(crops)[..., :1]  # (M, c, c, 1) luminance
    voxels = training.voxels if norm is None else same_statistics(training, norm)
    decoder = RidgeDecoder(decode_px=min(decode_px, geometry.crop_px))
    return decoder.fit(voxels, crops, training.image_index)


def same_statistics(training: TrainingSet, norm: NormStats) -> np.ndarray:
    """Training patterns z-scored with ``norm`` instead of their own statistics, (N, V),
    on the voxel columns ``norm`` keeps (a run's voxel selection) where the training set
    holds more."""
    own, voxels = training.norm, training.voxels
    columns = _model_columns(own, norm)
    if columns is not None and not columns.all():
        own = replace(own, mean=own.mean[columns], std=own.std[columns])
        voxels = voxels[:, columns]  # (N, V_kept)
    if own.mean.shape != norm.mean.shape:
        raise DataError(
            f"the training file gives {own.mean.size} voxels but the model's statistics have "
            f"{norm.mean.size}: use the training file and ROI the model was trained with"
        )
    if np.array_equal(own.mean, norm.mean) and np.array_equal(own.std, norm.std):
        return np.ascontiguousarray(voxels)
    raw = voxels * own.std + own.mean  # (N, V) back to the file's values
    return ((raw - norm.mean) / norm.std).astype(np.float32)


def _model_columns(own: NormStats, norm: NormStats) -> np.ndarray | None:
    """Columns of a training set (read with statistics ``own``) that a model's statistics
    ``norm`` keep, (V_own,) bool; None where ``norm`` keeps no subset of them."""
    if norm.kept_columns is None:
        return None
    have = own.kept_columns
    if have is None:
        have = np.ones(norm.kept_columns.size, dtype=bool)
    if have.size != norm.kept_columns.size or (norm.kept_columns & ~have).any():
        return None  # another ROI or file: the caller's shape check says so
    return norm.kept_columns[have]


def ridge_reconstruct(
    decoder: RidgeDecoder, test_sets: Sequence[TestSet], out_dir: Path
) -> list[dict[str, str]]:
    """Write the ridge baseline's reconstructions (unscaled averages: the decoder is linear)."""
    rows: list[dict[str, str]] = []
    for test_set in test_sets:
        bgr = decoder.predict(test_set.voxels)  # (M, c, c, 3), BGR as fitted; (M, c, c, 1) grey
        rows += write_set(out_dir, "ridge", test_set, np.ascontiguousarray(bgr[..., ::-1]))
    write_ridge_record(out_dir, decoder)
    return rows


def reconstruct_run(
    run_dir: Path, cfg: Config | None = None, ridge: bool = True, device: str = ""
) -> Path:
    """Reconstruct every test set of a run with its generator (and the ridge baseline).

    The ridge baseline is fitted on exactly what the generator was trained on: the
    same training images (validation split held out), the same target crops and
    the same voxel statistics. Writes ``RUN_DIR/recon/index.csv``, the image
    files and ``geometry.json``; returns the recon folder.
    """
    from e2e_recon.train.setup import load_data

    cfg = cfg or load_config(run_dir / "config.yaml")
    if cfg.model.shared:
        raise DataError(
            f"{run_dir} is a shared run: reconstruct one subject at a time with "
            f"--generator {run_dir} --test-fmri SUBJECT_TEST.h5 --out FOLDER"
        )
    log = get_logger()
    out_dir = run_dir / "recon"
    models = load_recon_models(run_dir)
    # The generator knows whether it was trained in grey (data.colour auto is resolved then).
    geometry = replace(ImageGeometry.from_config(cfg), colour=models[0].geometry.colour)
    data = cfg.data
    training = None
    norm = models[0].norm
    if ridge or norm is None:
        training = load_data(cfg)
        norm = norm or training.norm
    test_sets = _test_sets(data.test_fmri, data.roi, norm, data.images_dir or None, data)
    check_geometry(out_dir, geometry, {m.method for m in models} | ({"ridge"} if ridge else set()))
    dev = resolve_device(device or cfg.train.device)
    with staged_folder(out_dir) as stage:  # recon/ is replaced whole, or left as it was
        reconstruct(
            models, test_sets, stage, dev, cfg.recon.scale, cfg.recon.clip_percent,
            cfg.recon.batch_size,
        )  # fmt: skip
        write_geometry(stage, geometry)
        if ridge and training is not None:
            log.info("fitting the ridge baseline on %d samples", len(training.voxels))
            decoder = fit_ridge(training, geometry, norm)
            write_index(stage, ridge_reconstruct(decoder, test_sets, stage))
    log.info("reconstructions indexed in %s", out_dir / "index.csv")
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
    check_out_folder(out)
    models = load_recon_models(generator_path, subject=test_subject(test_files, subject))
    if ridge and (train_file is None or images_dir is None):
        raise DataError("--ridge needs --train-fmri and --images (the training images)")
    roi = roi or (models[0].norm.roi if models[0].norm else "") or DEFAULT_ROI
    norm = models[0].norm or _norm_from_training(train_file, roi)
    _check_roi(models[0], norm, roi)
    geometry = models[0].geometry
    test_sets = [load_test_set(p, None, roi, norm) for p in test_files]
    check_geometry(out, geometry, {m.method for m in models} | ({"ridge"} if ridge else set()))
    training = None
    if ridge and train_file is not None and images_dir is not None:
        # The generator's geometry and statistics; all images of the training file.
        training = load_training_set(train_file, images_dir, roi, geometry.image_size_px)
    with staged_folder(out) as stage:  # out/ is replaced whole, or left as it was
        index = reconstruct(models, test_sets, stage, resolve_device(device))
        write_geometry(stage, geometry)
        if training is not None:
            decoder = fit_ridge(training, geometry, norm)
            index = write_index(stage, ridge_reconstruct(decoder, test_sets, stage))
    return out / index.relative_to(stage)


def test_subject(test_files: Sequence[Path], subject: str | None) -> str | None:
    """The subject whose input layer reconstructs ``test_files``: ``subject``, else the
    one their names give (``sub-02_...``), else None (a one-subject generator needs none).

    Raises
    ------
    DataError
        Test files of different subjects in one call.
    """
    if subject:
        return subject
    from e2e_recon.data.home import subject_in_file_name

    named = {s for p in test_files if (s := subject_in_file_name(p))}
    if len(named) > 1:
        raise DataError(
            f"the test files belong to subjects {', '.join(sorted(named))}: reconstruct one "
            "subject at a time (one --out each), or name it with --subject"
        )
    return named.pop() if named else None


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
