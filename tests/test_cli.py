from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from e2e_recon import __version__
from e2e_recon.cli import app

runner = CliRunner()
COMMANDS = [
    "simulate", "import", "convert", "train", "reconstruct", "evaluate", "report", "demo",
    "download", "check-data",
]  # fmt: skip


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output


def test_train_help_names_every_preset() -> None:
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("adapt", "demo", "paper", "shared", "small"):
        assert name in result.output.split("Preset name (")[1].split(")")[0], name


def test_dry_run_prints_the_resolved_config_and_writes_nothing(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "train",
            "--config",
            "demo",
            "--set",
            "train.iters=12",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--dry-run",
        ],
    )
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.output)
    assert printed["train"]["iters"] == 12
    assert printed["name"] == "demo"
    assert not (tmp_path / "runs").exists()


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "e2e_recon.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_user_error_is_one_line_exit_2_no_traceback() -> None:
    proc = _run_cli("train", "--dry-run", "--set", "train.bach_size=3")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "train.batch_size" in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_debug_shows_the_traceback() -> None:
    proc = _run_cli("--debug", "train", "--dry-run", "--set", "train.bach_size=3")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
    assert "ConfigError" in proc.stderr


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    proc = _run_cli("train", "--dry-run", "--config", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2
    assert "nope.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_torchrun_without_run_dir_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = runner.invoke(app, ["train", "--config", "demo", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--run-dir" in result.output
    assert not list(tmp_path.iterdir())
