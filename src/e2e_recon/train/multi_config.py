"""Checks of the several-subject settings: shared runs (``model.shared``) and adaptation.

Kept apart from ``train/shared.py`` and ``train/adapt.py`` so that ``train/setup.py``
checks every setting before a run starts without importing the modules that load data.
"""

from __future__ import annotations

from e2e_recon.config import Config
from e2e_recon.data.home import subject_in_file_name
from e2e_recon.errors import ConfigError

ADAPT_INITS = ("auto", "ridge", "activations", "encoding")
SUBJECT_MIXES = ("equal", "proportional")


def subject_files(cfg: Config) -> list[tuple[str, str]]:
    """``(subject, training file)`` of a shared run, in order.

    Raises
    ------
    ConfigError
        No files, a file whose name gives no subject (and no ``data.subjects``), or a
        subject named twice.
    """
    d = cfg.data
    files = list(d.train_fmri_subjects) or ([d.train_fmri] if d.train_fmri else [])
    if not files:
        raise ConfigError(
            "a shared run needs one training file per subject: give --train-fmri once per "
            "subject (or set data.train_fmri_subjects)"
        )
    if d.subjects and len(d.subjects) != len(files):
        raise ConfigError(
            f"data.subjects names {len(d.subjects)} subject(s) for {len(files)} training "
            "file(s): give one --subject per --train-fmri, in order"
        )
    names: list[str | None] = list(d.subjects) or [subject_in_file_name(f) for f in files]
    for name, path in zip(names, files, strict=True):
        if not name:
            raise ConfigError(
                f"{path}: the file name does not start with a subject (sub-01_...): rename "
                "it, or give one --subject per --train-fmri"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"subjects {names}: each subject may be given once")
    return list(zip((str(n) for n in names), files, strict=True))


def check_shared(cfg: Config) -> None:
    """Refuse settings a shared run cannot take, naming the key."""
    if cfg.train.subject_mix not in SUBJECT_MIXES:
        raise ConfigError(
            f"train.subject_mix={cfg.train.subject_mix!r}; use one of {', '.join(SUBJECT_MIXES)}"
        )
    several = len(cfg.data.train_fmri_subjects) > 1
    if several and not cfg.model.shared:
        raise ConfigError(
            "several training files need a shared generator: use --config shared "
            "(or set model.shared=true)"
        )
    if not cfg.model.shared:
        return
    subject_files(cfg)
    if cfg.data.sampling != "random":
        raise ConfigError(
            "data.sampling=epoch reads one subject's samples in a fixed order; a shared run "
            "draws its batches per subject: use data.sampling=random"
        )
    if cfg.train.adapt_from:
        raise ConfigError(
            "train.adapt_from adapts a generator to one new subject: use --config adapt "
            "(model.shared=false) with one --train-fmri"
        )


def check_adapt(cfg: Config) -> None:
    """Refuse adapt settings that cannot run, naming the key."""
    t = cfg.train
    if t.adapt_init not in ADAPT_INITS:
        raise ConfigError(f"train.adapt_init={t.adapt_init!r}; use one of {', '.join(ADAPT_INITS)}")
    if t.adapt_freeze_iters < 0 or t.adapt_finetune_lr_scale < 0:
        raise ConfigError(
            "train.adapt_freeze_iters and train.adapt_finetune_lr_scale must be 0 or more"
        )
    if t.adapt_source_fmri and not t.adapt_from:
        raise ConfigError(
            "--source-fmri (train.adapt_source_fmri) names the training files of a source "
            "generator: give the source with --from and --config adapt"
        )
    if cfg.name == "adapt" and not t.adapt_from:
        raise ConfigError(
            "--config adapt needs the source generator: --from RUN_FOLDER, generator .pt or "
            ".caffemodel"
        )
