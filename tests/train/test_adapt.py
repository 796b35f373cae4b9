"""Adapting a source generator to a new subject: what is kept, frozen and fine-tuned, the
two starts of the new input layer, exact resume, and each kind of source."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny_multi_subject import adapt_config, derive_subject, make_multi_subject, shared_config
from tiny_train_subject import tiny_config

from e2e_recon.config import load_config, with_overrides
from e2e_recon.errors import ConfigError, DataError
from e2e_recon.nets.loading import load_generator
from e2e_recon.nets.shared import shared_layers
from e2e_recon.train import checkpoint as ckpt_io
from e2e_recon.train.adapt import (
    activation_fit,
    encoding_start,
    read_source,
    source_activations,
)
from e2e_recon.train.loop import train
from e2e_recon.train.setup import load_data
from e2e_recon.train.stats import read_stats

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Three source subjects, their shared run, and a new subject sub-04 (44 voxels)."""
    root = tmp_path_factory.mktemp("experiment")
    paths = make_multi_subject(root)
    first = Path(paths["train"][0])  # type: ignore[index]
    new = derive_subject(first, "sub-04", 44, seed=7, noise=0.3)
    train(shared_config(paths), root / "shared")
    return {**paths, "new": new, "source": root / "shared"}


def _snapshot(run: Path, iteration: int) -> dict[str, torch.Tensor]:
    ckpt = ckpt_io.load_checkpoint(run / "checkpoints" / ckpt_io.snapshot_name(iteration))
    return dict(ckpt["generator"])


def _source_shared(source: Path) -> dict[str, torch.Tensor]:
    return shared_layers(torch.load(source / "best.pt", weights_only=True)["state_dict"])


def _adapt(experiment: dict[str, object], *extra: str) -> object:
    return adapt_config(experiment["new"], experiment["images"], experiment["source"], *extra)  # type: ignore[arg-type]


def test_frozen_then_fine_tuned(experiment: dict[str, object], tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(_adapt(experiment, "train.adapt_finetune_lr_scale=0.5"), run)  # type: ignore[arg-type]
    source = _source_shared(experiment["source"])  # type: ignore[arg-type]
    frozen, tuned = _snapshot(run, 3), _snapshot(run, 6)
    for name, value in source.items():
        assert torch.equal(frozen[name], value), name  # 3 iterations frozen
    changed = [n for n in source if n.endswith("weight") and not torch.equal(tuned[n], source[n])]
    assert "defc6.weight" in changed and "deconv0.weight" in changed
    rows = read_stats(run / "stats.jsonl")
    assert {r["lr_g"] for r in rows} == {1e-3}  # the input layer's rate throughout
    # The run's generator file names the new subject; the architecture is the source's
    # (fc 64, 32 px), not the preset's (fc 512, 64 px).
    payload = torch.load(run / "generator.pt", weights_only=True)
    assert payload["arch"]["subjects"] == {"sub-04": 44}
    generator = load_generator(run / "generator.pt")
    assert (generator.fc_width, generator.output_size_px, generator.n_voxels) == (64, 32, 44)
    assert getattr(generator, "subject", None) == "sub-04"


def test_frozen_only_keeps_the_source_layers(experiment: dict[str, object], tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(_adapt(experiment, "train.adapt_finetune_lr_scale=0"), run)  # type: ignore[arg-type]
    source, last = _source_shared(experiment["source"]), _snapshot(run, 6)  # type: ignore[arg-type]
    for name, value in source.items():
        assert torch.equal(last[name], value), name
    start = read_source(str(experiment["source"]))
    assert not torch.equal(last["defc7.weight"][:, :1], torch.zeros(64, 1))
    assert start.subjects == ["sub-01", "sub-02", "sub-03"]


def _agreement(
    data: Any, weight: torch.Tensor, bias: torch.Tensor, targets: np.ndarray, ids: np.ndarray
) -> float:
    """Correlation of a start's codes for the training samples with the source activations."""
    decoded = np.asarray(data.voxels) @ weight.numpy().T + bias.numpy()  # (N, F)
    rows = np.searchsorted(ids, np.asarray(data.stimulus_ids)[np.asarray(data.image_index)])
    return float(np.corrcoef(decoded.ravel(), targets[rows].ravel())[0, 1])


def test_activation_fit_maps_the_new_subject_onto_the_source_activations(
    experiment: dict[str, object],
) -> None:
    cfg = _adapt(experiment, "train.adapt_init=activations")
    source = read_source(str(experiment["source"]))
    targets, ids = source_activations(source, cfg)  # type: ignore[arg-type]
    assert targets.shape == (24, 64) and ids.size == 24  # every training image, the source width
    data = load_data(cfg)  # type: ignore[arg-type]
    weight, bias, note = activation_fit(source, data, cfg)  # type: ignore[arg-type]
    assert weight.shape == (64, 44) and "36 samples" in note  # 18 images x 2, 6 held out
    assert _agreement(data, weight, bias, targets, ids) > 0.6


def test_encoding_fit_inverts_a_forward_model_of_the_new_subject(
    experiment: dict[str, object],
) -> None:
    cfg = _adapt(experiment, "train.adapt_init=encoding")
    source = read_source(str(experiment["source"]))
    data = load_data(cfg)  # type: ignore[arg-type]
    weight, bias, note = encoding_start(source, data, cfg)  # type: ignore[arg-type]
    # 36 samples (18 images x 2): 18 components, half the samples
    assert weight.shape == (64, 44) and "18-component" in note and "36 samples" in note
    targets, ids = source_activations(source, cfg)  # type: ignore[arg-type]
    assert _agreement(data, weight, bias, targets, ids) > 0.6


@pytest.mark.parametrize("start", ["encoding", "auto"])
def test_encoding_init_trains(experiment: dict[str, object], tmp_path: Path, start: str) -> None:
    """From a shared run, ``auto`` is the encoding start."""
    train(_adapt(experiment, f"train.adapt_init={start}"), tmp_path / "run")  # type: ignore[arg-type]
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "inverse of a 18-component encoding model fitted on 36 samples" in log


def test_a_generator_file_gives_the_code_of_its_run_folder(
    experiment: dict[str, object],
) -> None:
    """A shared run's ``.pt`` carries its config, and with it the source's training files."""
    cfg = _adapt(experiment, "train.adapt_init=encoding")
    folder = read_source(str(experiment["source"]))
    from_file = read_source(str(Path(experiment["source"]) / "best.pt"))  # type: ignore[arg-type]
    assert from_file.run_dir is None
    for got, expected in zip(
        source_activations(from_file, cfg),  # type: ignore[arg-type]
        source_activations(folder, cfg),  # type: ignore[arg-type]
        strict=True,
    ):
        np.testing.assert_array_equal(got, expected)


def test_a_source_without_training_files_takes_them_from_source_fmri(
    experiment: dict[str, object],
) -> None:
    """A generator file that names no training files (a released one) needs --source-fmri;
    the files given are matched to its subjects by name and give the same code."""
    cfg = _adapt(experiment, "train.adapt_init=encoding")
    folder = replace(read_source(str(experiment["source"])), norms={})  # whole-file z-scores
    bare = replace(folder, run_dir=None, config=None)
    with pytest.raises(ConfigError, match="--source-fmri"):
        source_activations(bare, cfg)  # type: ignore[arg-type]
    files = ", ".join(f"'{p}'" for p in reversed(experiment["train"]))  # type: ignore[call-overload]
    given = with_overrides(cfg, [f"train.adapt_source_fmri=[{files}]"])  # type: ignore[arg-type]
    for got, expected in zip(
        source_activations(bare, given),
        source_activations(folder, cfg),  # type: ignore[arg-type]
        strict=True,
    ):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_source_fmri_of_another_subject_is_refused(
    experiment: dict[str, object], tmp_path: Path
) -> None:
    cfg = _adapt(experiment, "train.adapt_init=encoding")
    bare = replace(read_source(str(experiment["source"])), run_dir=None, config=None, norms={})
    new = with_overrides(cfg, [f"train.adapt_source_fmri=['{experiment['new']}']"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="starts with sub-04"):
        source_activations(bare, new)
    # sub-02's responses under sub-01's name: 40 voxel columns for an input layer of 48
    renamed = tmp_path / "sub-01_training.h5"
    shutil.copy(experiment["train"][1], renamed)  # type: ignore[index]
    wrong = with_overrides(cfg, [f"train.adapt_source_fmri=['{renamed}']"])  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"gives 40 voxel columns.*takes 48"):
        source_activations(bare, wrong)


def test_adapt_without_a_source_is_refused(experiment: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--from"):
        train(_adapt(experiment, "train.adapt_from=''"), tmp_path / "run")  # type: ignore[arg-type]


@pytest.mark.slow
def test_interrupted_and_resumed_adaptation_equals_uninterrupted(
    experiment: dict[str, object], tmp_path: Path
) -> None:
    cfg = _adapt(experiment, "train.iters=5", "train.adapt_freeze_iters=2",
                 "train.adapt_finetune_lr_scale=0.5", "train.snapshot_every_iters=1")  # fmt: skip
    train(cfg, tmp_path / "straight")  # type: ignore[arg-type]
    train(with_overrides(cfg, ["train.iters=1"]), tmp_path / "split")  # type: ignore[arg-type]
    train(cfg, tmp_path / "split", resume=True)  # type: ignore[arg-type]
    for name, value in _snapshot(tmp_path / "straight", 5).items():
        assert torch.equal(value, _snapshot(tmp_path / "split", 5)[name]), name


def test_adapt_from_a_one_subject_run(subject: dict[str, Path], tmp_path: Path) -> None:
    """A one-subject run names its training file: ``auto`` is the encoding start from it."""
    train(tiny_config(subject, "train.iters=2"), tmp_path / "source")
    cfg = adapt_config(subject["train"], subject["images"], tmp_path / "source", "train.iters=2",
                       "train.adapt_init=auto")  # fmt: skip
    train(cfg, tmp_path / "run")
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "encoding model fitted on 36 samples" in log
    source = load_generator(tmp_path / "source" / "generator.pt")
    adapted = ckpt_io.load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert torch.equal(adapted["generator"]["deconv0.weight"], source.deconv0.weight)


def test_auto_falls_back_to_the_ridge_start_and_says_why(
    subject: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The source's training file is gone: ``auto`` starts from the ridge decoder."""
    moved = tmp_path / subject["train"].name
    shutil.copy(subject["train"], moved)
    train(tiny_config({**subject, "train": moved}, "train.iters=2"), tmp_path / "source")
    moved.unlink()
    cfg = adapt_config(subject["train"], subject["images"], tmp_path / "source", "train.iters=2",
                       "train.adapt_init=auto")  # fmt: skip
    train(cfg, tmp_path / "run")
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "rows from the ridge decoder" in log and "no encoding start" in log
    assert "is not there: give the source subjects' training files with --source-fmri" in log
    warning = capsys.readouterr().err  # on the terminal too, with what to do
    assert "warning: the new input layer starts from the ridge decoder" in warning
    assert "--source-fmri" in warning


def _caffe_fixtures() -> Path | None:
    env = os.environ.get("E2E_CAFFE_FIXTURES")
    folder = Path(env) if env else REPO_ROOT.parent / "shared" / "fixtures" / "caffe"
    return folder if (folder / "generator_small.caffemodel").is_file() else None


@pytest.mark.slow
def test_adapt_from_a_released_caffe_generator(subject: dict[str, Path], tmp_path: Path) -> None:
    """The fixture generator (64 voxels, fc 256, 256 px, published channels): its layers
    after defc7 are kept frozen, a new 48-voxel input layer is trained in front of them,
    started from an encoding model on the code of a 64-voxel source file (--source-fmri)."""
    folder = _caffe_fixtures()
    if folder is None:
        pytest.skip("Caffe fixtures absent: set E2E_CAFFE_FIXTURES or provide ../shared/fixtures")
    model = folder / "generator_small.caffemodel"
    source_file = derive_subject(subject["train"], "sub-09", 64, seed=3, noise=0.3)
    cfg = adapt_config(subject["train"], subject["images"], model, "train.batch_size=2",
                       "train.iters=2", "train.adapt_init=encoding",
                       f"train.adapt_source_fmri=['{source_file}']",
                       "train.adapt_finetune_lr_scale=0", "data.val_fraction=0",
                       "train.val_every_iters=0", "train.early_stop_patience=0",
                       "train.ema_decay=0")  # fmt: skip
    train(cfg, tmp_path / "run")
    assert "encoding model fitted on" in (tmp_path / "run" / "log.txt").read_text()
    trained = load_config(tmp_path / "run" / "config.yaml")  # the published geometry
    assert (trained.data.image_size_px, trained.data.crop_px) == (248, 227)
    released = load_generator(model)
    adapted = load_generator(tmp_path / "run" / "generator.pt")
    assert (adapted.n_voxels, adapted.fc_width, adapted.output_size_px) == (48, 256, 256)
    for name in ("defc6.weight", "defc5.bias", "conv5_1.weight", "deconv0.weight"):
        assert torch.equal(adapted.state_dict()[name], released.state_dict()[name]), name
