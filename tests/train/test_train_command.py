"""``e2e-recon train`` and ``reconstruct`` refuse unusable folders and values in one line,
before writing anything, and never reuse a folder that holds a run."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
from tiny_train_subject import tiny_config
from typer.testing import CliRunner

from e2e_recon.cli import app
from e2e_recon.config import save_config
from e2e_recon.runs import RUN_MARKER, is_marked_run
from e2e_recon.train.stats import read_stats

runner = CliRunner()


@pytest.fixture()
def config(subject: dict[str, Path], tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    save_config(tiny_config(subject, "train.iters=1"), path)
    return path


def _one_line_error(result: object, *parts: str) -> None:
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    lines = [line for line in result.output.splitlines() if line.strip()]  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output  # type: ignore[attr-defined]
    for part in parts:
        assert part in lines[0]


def _finished_run(folder: Path, marked: bool = True) -> None:
    """A run's files; ``marked``: as this version writes them, else as older versions did."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "snapshot_iter0000060.pt").write_bytes(b"old")
    (folder / "config.yaml").write_text("name: old\n")
    (folder / "stats.jsonl").write_text('{"iteration": 1}\n' * 60)
    if marked:
        (folder / RUN_MARKER).write_text('{"format": "e2e-recon-run", "version": 1}\n')


def _contents(folder: Path) -> dict[Path, bytes | None]:
    return {p: None if p.is_dir() else p.read_bytes() for p in folder.rglob("*")}


def test_run_dir_holding_a_run_is_refused_and_left_as_it_was(config: Path, tmp_path: Path) -> None:
    run = tmp_path / "old"
    _finished_run(run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    result = runner.invoke(app, ["train", "--config", str(config), "--run-dir", str(run)])
    _one_line_error(result, "already holds a run", "--resume", "--overwrite")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_overwrite_clears_the_old_run_first(config: Path, tmp_path: Path) -> None:
    run = tmp_path / "old"
    _finished_run(run)
    (run / "notes.txt").write_text("the user's own file, beside the run")
    args = ["train", "--config", str(config), "--run-dir", str(run), "--overwrite"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert not (run / "checkpoints" / "snapshot_iter0000060.pt").exists()
    assert [r["iteration"] for r in read_stats(run / "stats.jsonl")] == [1]
    assert (run / "notes.txt").read_text() == "the user's own file, beside the run"
    assert is_marked_run(run)


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_that_is_not_a_run_is_never_written_into(
    config: Path, tmp_path: Path, overwrite: bool
) -> None:
    """A user's folder: not used as a run folder, and never emptied by --overwrite."""
    mine = tmp_path / "documents"
    (mine / "photos").mkdir(parents=True)
    (mine / "thesis.tex").write_text("years of work")
    (mine / "photos" / "a.jpg").write_bytes(b"jpeg")
    before = _contents(mine)
    args = ["train", "--config", str(config), "--run-dir", str(mine)]
    result = runner.invoke(app, [*args, *(["--overwrite"] if overwrite else [])])
    _one_line_error(result, str(mine), "not a run folder", RUN_MARKER)
    assert _contents(mine) == before


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_run_of_an_older_version_is_never_cleared(
    config: Path, tmp_path: Path, overwrite: bool
) -> None:
    """No marker: the folder may hold more than the run, so only the user deletes it."""
    run = tmp_path / "old"
    _finished_run(run, marked=False)
    (run / "log.txt").write_text("old log\n")
    before = _contents(run)
    args = ["train", "--config", str(config), "--run-dir", str(run)]
    result = runner.invoke(app, [*args, *(["--overwrite"] if overwrite else [])])
    _one_line_error(result, "older version", f"--resume {run}", "delete it by hand")
    assert _contents(run) == before


def test_a_run_of_an_older_version_still_resumes(config: Path, tmp_path: Path) -> None:
    run = tmp_path / "old"
    first = runner.invoke(app, ["train", "--config", str(config), "--run-dir", str(run)])
    assert first.exit_code == 0, first.output
    (run / RUN_MARKER).unlink()  # as a run made before the marker existed
    (run / "mine.txt").write_text("kept")
    result = runner.invoke(app, ["train", "--resume", str(run), "--set", "train.iters=2"])
    assert result.exit_code == 0, result.output
    assert [r["iteration"] for r in read_stats(run / "stats.jsonl")] == [1, 2]
    assert not (run / RUN_MARKER).exists() and (run / "mine.txt").read_text() == "kept"


def test_a_refused_run_leaves_a_given_empty_folder_empty(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    config = tmp_path / "tiny.yaml"
    save_config(tiny_config(subject, f"data.train_fmri='{tmp_path / 'nope.h5'}'"), config)
    run = tmp_path / "empty"
    run.mkdir()
    result = runner.invoke(app, ["train", "--config", str(config), "--run-dir", str(run)])
    assert result.exit_code == 2 and list(run.iterdir()) == []


@pytest.mark.parametrize(
    ("setting", "named"),
    [("train.lr=-0.001", "train.lr"), ("data.image_size_px=0", "data.image_size_px"),
     ("data.crop_px=0", "data.crop_px"), ("train.snapshot_every_iters=-1", "snapshot_every")],
)  # fmt: skip
def test_bad_values_are_refused_in_one_line_leaving_no_folder(
    config: Path, tmp_path: Path, setting: str, named: str
) -> None:
    runs = tmp_path / "runs"
    args = ["train", "--config", str(config), "--runs-dir", str(runs), "--set", setting]
    _one_line_error(runner.invoke(app, args), named)
    assert not runs.exists() or not any(runs.iterdir())


def test_zero_learning_rate_warns_on_the_terminal(config: Path, tmp_path: Path) -> None:
    args = ["train", "--config", str(config), "--run-dir", str(tmp_path / "r"), "--set",
            "train.lr=0"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and result.output.count("train.lr=0:") == 1


def test_config_file_that_is_not_text_is_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "weights.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x81")
    result = runner.invoke(app, ["train", "--config", str(binary), "--runs-dir", str(tmp_path)])
    _one_line_error(result, "weights.yaml", "not a text file")


def test_missing_data_is_refused_leaving_no_run_folder(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    config = tmp_path / "tiny.yaml"
    save_config(tiny_config(subject, f"data.train_fmri='{tmp_path / 'nope.h5'}'"), config)
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", "--config", str(config), "--runs-dir", str(runs)])
    assert result.exit_code == 2, result.output
    assert "nope.h5" in result.output and not runs.exists()  # inputs are checked first
    run = tmp_path / "given"
    result = runner.invoke(app, ["train", "--config", str(config), "--run-dir", str(run)])
    assert result.exit_code == 2 and not run.exists()


def _read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make ``folder`` behave as on a read-only mount (tests may run as root)."""
    real_access, real_mkdir = os.access, Path.mkdir

    def access(path: object, mode: int, *args: object, **kwargs: object) -> bool:
        if Path(str(path)).absolute().is_relative_to(folder) and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)  # type: ignore[arg-type]

    def mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if self.absolute().is_relative_to(folder):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(Path, "mkdir", mkdir)


def test_read_only_runs_folder_is_one_line(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    _read_only(monkeypatch, locked)
    result = runner.invoke(app, ["train", "--config", str(config), "--runs-dir", str(locked)])
    _one_line_error(result, str(locked), "read-only")


def test_disk_full_during_training_is_one_line_with_free_space(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: object, **kwargs: object) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", disk_full)
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--config", str(config), "--run-dir", str(run)])
    _one_line_error(result, str(run / "checkpoints"), "free there", "is the disk full?")
    assert "unexpected pos" not in result.output  # PyTorch's internals are not the user's words


def test_reconstruct_out_naming_a_file_or_read_only_folder_is_refused(
    config: Path, subject: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    assert (
        runner.invoke(app, ["train", "--config", str(config), "--run-dir", str(run)]).exit_code == 0
    )
    out = tmp_path / "recon.txt"
    out.write_text("keep me")
    args = ["reconstruct", "--generator", str(run / "generator.pt"), "--test-fmri",
            str(subject["test"]), "--device", "cpu", "--out"]  # fmt: skip
    _one_line_error(runner.invoke(app, [*args, str(out)]), "recon.txt", "is a file")
    assert out.read_text() == "keep me"
    locked = tmp_path / "locked"
    locked.mkdir()
    _read_only(monkeypatch, locked)
    _one_line_error(runner.invoke(app, [*args, str(locked / "recon")]), "read-only")


def test_any_command_failing_to_write_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    _read_only(monkeypatch, locked)
    args = ["simulate", "--preset", "tiny", "--out", str(locked / "sim")]
    _one_line_error(runner.invoke(app, args), "cannot write to", "Read-only file system", "free")
