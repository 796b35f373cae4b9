from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2e_recon.config import load_config
from e2e_recon.errors import CheckpointError
from e2e_recon.runs import RUN_MARKER, init_run_dir, is_marked_run, next_run_dir, require_run_dir


def test_run_dirs_are_numbered(tmp_path: Path) -> None:
    first = next_run_dir(tmp_path, "sub-01", "demo")
    second = next_run_dir(tmp_path, "sub-01", "my run/x")
    assert first.name == "00000-sub-01-demo"
    assert second.name == "00001-sub-01-my-run-x"


def test_init_writes_config_and_layout(tmp_path: Path) -> None:
    cfg = load_config("demo")
    run = init_run_dir(tmp_path / "r", cfg)
    assert (run / "config.yaml").is_file()
    assert all((run / sub).is_dir() for sub in ("checkpoints", "recon", "report"))
    assert load_config(run / "config.yaml") == cfg
    assert require_run_dir(run) == run
    with pytest.raises(CheckpointError, match="not a run directory"):
        require_run_dir(tmp_path)


def test_a_new_run_is_marked_and_an_older_one_is_left_unmarked(tmp_path: Path) -> None:
    cfg = load_config("demo")
    run = init_run_dir(tmp_path / "new", cfg)
    assert is_marked_run(run)
    marker = json.loads((run / RUN_MARKER).read_text())
    assert marker["format"] == "e2e-recon-run" and marker["version"] == 1
    older = tmp_path / "older"  # a run made before the marker: resumed, never marked
    older.mkdir()
    (older / "config.yaml").write_text("name: old\n")
    init_run_dir(older, cfg)
    assert not is_marked_run(older) and not (older / RUN_MARKER).exists()
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / RUN_MARKER).write_text("not json")  # only the project's own content
    assert not is_marked_run(tmp_path / "fake")


@pytest.mark.parametrize("content", ["thesis.tex", RUN_MARKER])
def test_demo_out_must_be_new_or_empty(tmp_path: Path, content: str) -> None:
    from typer.testing import CliRunner

    from e2e_recon.cli import app

    out = tmp_path / "out"
    out.mkdir()
    (out / content).write_text("{}")
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert "not an empty folder" in result.output and len(result.output.splitlines()) == 1
    assert [p.name for p in out.iterdir()] == [content]
