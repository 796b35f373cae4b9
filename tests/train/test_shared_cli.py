"""The command line of several subjects: shared training, adaptation, reconstruction and
evaluation of one subject, on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_multi_subject import derive_subject, make_multi_subject
from typer.testing import CliRunner

from e2e_recon.cli import app

runner = CliRunner()
pytestmark = pytest.mark.slow  # two trainings by the command line (about 15 s)
TINY = [
    "data.image_size_px=36", "data.crop_px=32", "data.val_fraction=0.25",
    "model.fc_width=64", "model.output_size_px=32", "model.base_channels=16",
    "model.comparator=random-caffenet", "model.feature_layers=[conv1]",
    "train.batch_size=6", "train.iters=4", "train.val_every_iters=2", "train.grid_every_iters=0",
    "train.device=cpu", "train.precision=fp32", "train.channels_last=false",
]  # fmt: skip


def _sets(*items: str) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A shared run of three subjects and sub-04 adapted from it, both by the command line."""
    root = tmp_path_factory.mktemp("cli")
    paths = make_multi_subject(root)
    new = derive_subject(Path(paths["train"][0]), "sub-04", 44, seed=7, noise=0.3)  # type: ignore[index]
    new_test = derive_subject(Path(paths["test"][0]), "sub-04", 44, seed=7, noise=0.3)  # type: ignore[index]
    files = [arg for p in paths["train"] for arg in ("--train-fmri", str(p))]  # type: ignore[attr-defined]
    args = ["train", "--config", "shared", *files, "--images", str(paths["images"]),
            "--runs-dir", str(root / "runs"), *_sets(*TINY)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    shared = root / "runs" / "00000-sub-01-sub-02-sub-03-shared"
    assert (shared / "generator.pt").is_file()
    args = ["train", "--config", "adapt", "--from", str(shared), "--train-fmri", str(new),
            "--images", str(paths["images"]), "--runs-dir", str(root / "runs"),
            *_sets(*TINY[:3], *TINY[6:], "train.adapt_freeze_iters=2")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    adapted = root / "runs" / "00001-sub-04-adapt"
    assert (adapted / "generator.pt").is_file()
    return {**paths, "root": root, "shared": shared, "adapted": adapted, "new": new,
            "new_test": new_test}  # fmt: skip


def test_reconstruct_and_evaluate_a_subject_of_a_shared_run(runs: dict[str, object]) -> None:
    out = Path(runs["root"]) / "recon-sub-02"  # type: ignore[arg-type]
    test = Path(runs["test"][1])  # type: ignore[index]
    args = ["reconstruct", "--generator", str(runs["shared"]), "--test-fmri", str(test),
            "--out", str(out), "--device", "cpu"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "index.csv").read_text().count("\n") == 9  # header + 8 test images
    args = ["evaluate", "--recon", str(out), "--images", str(runs["images"]),
            "--feature-net", "none", "--bootstrap", "10"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "pixel" in json.dumps(json.loads((out / "metrics.json").read_text()))


def test_a_subject_not_in_the_shared_run_is_one_line_naming_the_subjects(
    runs: dict[str, object],
) -> None:
    args = ["reconstruct", "--generator", str(runs["shared"]), "--test-fmri",
            str(runs["new_test"]), "--out", str(Path(runs["root"]) / "x"), "--device", "cpu"]  # type: ignore[arg-type]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "no input layer for subject 'sub-04'; it holds sub-01, sub-02, sub-03" in result.output


def test_reconstruct_the_adapted_subject(runs: dict[str, object]) -> None:
    out = Path(runs["root"]) / "recon-sub-04"  # type: ignore[arg-type]
    args = ["reconstruct", "--generator", str(runs["adapted"]), "--test-fmri",
            str(runs["new_test"]), "--out", str(out), "--device", "cpu"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "index.csv").is_file()


def test_several_training_files_need_the_shared_preset(
    runs: dict[str, object], tmp_path: Path
) -> None:
    files = [arg for p in runs["train"] for arg in ("--train-fmri", str(p))]  # type: ignore[attr-defined]
    args = ["train", "--config", "small", *files, "--images", str(runs["images"]),
            "--runs-dir", str(tmp_path)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--config shared" in result.output
    assert not any(tmp_path.iterdir())


def test_adapt_from_a_generator_file_with_the_source_training_files(
    runs: dict[str, object], tmp_path: Path
) -> None:
    """--source-fmri reaches the run's config and its encoding start, from a bare .pt."""
    sources = [arg for p in runs["train"] for arg in ("--source-fmri", str(p))]  # type: ignore[attr-defined]
    args = ["train", "--config", "adapt", "--from", str(Path(runs["shared"]) / "best.pt"),  # type: ignore[arg-type]
            *sources, "--train-fmri", str(runs["new"]), "--images", str(runs["images"]),
            "--run-dir", str(tmp_path / "run"),
            *_sets(*TINY[:3], *TINY[6:], "train.iters=2", "train.adapt_init=encoding")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert all(str(p) in config for p in runs["train"])  # type: ignore[attr-defined]
    assert "encoding model fitted on" in (tmp_path / "run" / "log.txt").read_text()


def test_source_fmri_without_a_source_is_refused(runs: dict[str, object], tmp_path: Path) -> None:
    args = ["train", "--config", "small", "--train-fmri", str(runs["train"][0]),  # type: ignore[index]
            "--source-fmri", str(runs["train"][1]), "--images", str(runs["images"]),  # type: ignore[index]
            "--runs-dir", str(tmp_path)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "give the source with --from" in result.output
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("option", ["--train-fmri", "--source-fmri"])
def test_a_missing_file_is_named_with_its_option_and_leaves_nothing(
    runs: dict[str, object], tmp_path: Path, option: str
) -> None:
    """A shared run's second training file or a source file that is not there: one line
    naming the option and the path, before any run folder is made."""
    missing = tmp_path / "sub-02_missing.h5"
    if option == "--train-fmri":
        args = ["train", "--config", "shared", "--train-fmri", str(runs["train"][0]),  # type: ignore[index]
                "--train-fmri", str(missing)]  # fmt: skip
    else:
        args = ["train", "--config", "adapt", "--from", str(runs["shared"]),
                "--source-fmri", str(missing), "--train-fmri", str(runs["new"])]  # fmt: skip
    runs_dir = tmp_path / "runs"
    args += ["--images", str(runs["images"]), "--runs-dir", str(runs_dir)]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert f"{option} " in result.output
    assert f"BData file {missing} cannot be opened (No such file or directory)" in result.output
    assert "e2e-recon download fmri" in result.output
    assert not runs_dir.exists() or not any(runs_dir.iterdir())
