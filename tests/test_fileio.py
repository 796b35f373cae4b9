"""Staged output folders and the one-line message of a failed write."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from e2e_recon.errors import OutputError
from e2e_recon.fileio import atomic_write_text, output_error, reporting_write_errors, staged_folder


def test_staged_folder_replaces_the_folder_whole_on_success(tmp_path: Path) -> None:
    out = tmp_path / "recon"
    out.mkdir()
    atomic_write_text(out / "kept.txt", "old")
    atomic_write_text(out / "replaced.txt", "old")
    with staged_folder(out) as stage:
        assert stage.parent == tmp_path and stage.name.startswith(".recon.")
        assert not (out / "new.txt").exists()  # nothing appears in the folder before the end
        atomic_write_text(stage / "replaced.txt", "new")
        atomic_write_text(stage / "new.txt", "new")
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "kept.txt": "old",
        "replaced.txt": "new",
        "new.txt": "new",
    }
    assert [p.name for p in tmp_path.iterdir()] == ["recon"]


def test_staged_folder_leaves_the_folder_as_it_was_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "recon"
    out.mkdir()
    atomic_write_text(out / "a.txt", "old")
    full = rf"cannot write to {out}: No space left on device"
    with pytest.raises(OutputError, match=full), staged_folder(out) as stage:
        atomic_write_text(stage / "a.txt", "new")  # replaces the hard link, not the file
        raise OSError(errno.ENOSPC, "No space left on device")
    assert (out / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["recon"]
    with pytest.raises(ValueError), staged_folder(tmp_path / "fresh"):
        raise ValueError("not a write failure: raised as it is")
    assert [p.name for p in tmp_path.iterdir()] == ["recon"]


def test_write_failure_message_is_plain() -> None:
    torch_text = RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")
    message = str(output_error("/runs/x", torch_text))
    assert "unexpected pos" not in message and "is the disk full?" in message
    h5py_like = OSError(errno.ENOSPC, "Can't synchronously write data (file write failed: ...\n")
    assert "cannot write to /runs/x: No space left on device;" in str(
        output_error("/runs/x", h5py_like)
    )


def test_reporting_only_write_failures_keeps_other_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), reporting_write_errors(tmp_path, any_oserror=False):
        (tmp_path / "missing.txt").read_text()
    quota = OSError(errno.EDQUOT, "Disk quota exceeded")
    with pytest.raises(OutputError, match=str(tmp_path)), reporting_write_errors(tmp_path, False):
        raise quota


def test_any_command_out_of_space_names_its_output_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image
    from typer.testing import CliRunner

    from e2e_recon.cli import app

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it: no name

    monkeypatch.setattr(Image.Image, "save", no_space)
    out = tmp_path / "sim"
    result = CliRunner().invoke(app, ["simulate", "--preset", "tiny", "--out", str(out)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert f"cannot write to {out}: No space left on device" in lines[0]


def test_staged_folder_keeps_a_link_to_a_folder_elsewhere(tmp_path: Path) -> None:
    real = tmp_path / "big-disk" / "recon"
    real.mkdir(parents=True)
    link = tmp_path / "recon"
    link.symlink_to(real, target_is_directory=True)
    with staged_folder(link) as stage:
        atomic_write_text(stage / "a.txt", "new")
    assert link.is_symlink() and (real / "a.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big-disk", "recon"]
    assert [p.name for p in real.parent.iterdir()] == ["recon"]
