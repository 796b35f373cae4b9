"""A full disk in ``reconstruct`` and ``evaluate``: one line naming the folder, no partial files."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from e2e_recon.cli import app
from e2e_recon.evaluate import evaluate as evaluate_module
from e2e_recon.recon import reconstruct as reconstruct_module

runner = CliRunner()
pytestmark = pytest.mark.slow


def _one_line(result: Any, *parts: str) -> None:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for part in parts:
        assert part in lines[0], lines[0]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _disk_fills_after(monkeypatch: pytest.MonkeyPatch, writes: int) -> None:
    """``.mat`` writes of reconstructions fail with ENOSPC after ``writes`` succeed."""
    real = reconstruct_module._save_mat
    calls = {"n": 0}

    def save(path: Path, image: Any) -> None:
        calls["n"] += 1
        if calls["n"] > writes:  # as a write() raises it: no file name attached
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, image)

    monkeypatch.setattr(reconstruct_module, "_save_mat", save)


def test_disk_full_in_reconstruct_leaves_no_partial_recon_folder(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    shutil.rmtree(run / "recon", ignore_errors=True)
    with monkeypatch.context() as patch:
        _disk_fills_after(patch, 3)
        result = runner.invoke(app, ["reconstruct", "--generator", str(run), "--device", "cpu"])
    _one_line(result, str(run / "recon"), "No space left on device", "free there")
    assert not (run / "recon").exists()
    assert not [p.name for p in run.iterdir() if p.name.startswith(".recon")]

    # A folder of earlier reconstructions is left exactly as it was.
    assert runner.invoke(app, ["reconstruct", "--generator", str(run)]).exit_code == 0
    before = _files(run / "recon")
    with monkeypatch.context() as patch:
        _disk_fills_after(patch, 3)
        result = runner.invoke(app, ["reconstruct", "--generator", str(run), "--device", "cpu"])
    _one_line(result, str(run / "recon"), "free there")
    assert _files(run / "recon") == before
    assert not [p.name for p in run.iterdir() if p.name.startswith(".recon")]


def test_disk_full_in_evaluate_is_one_line(
    tiny_run: Path, tiny_subject: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    if not (run / "recon" / "index.csv").is_file():
        assert runner.invoke(app, ["reconstruct", "--generator", str(run)]).exit_code == 0
    before = _files(run / "recon")

    def no_space(path: object, text: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(evaluate_module, "atomic_write_text", no_space)
    args = ["evaluate", "--recon", str(run / "recon"), "--images", tiny_subject["images_dir"],
            "--feature-net", "none", "--bootstrap", "10", "--device", "cpu"]  # fmt: skip
    _one_line(runner.invoke(app, args), str(run / "recon"), "No space left on device", "free")
    assert _files(run / "recon") == before
