"""``e2e-recon demo --quick``: the whole flow end to end, through the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from e2e_recon.cli import app
from e2e_recon.demo import demo_config

runner = CliRunner()
SHIFT_BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "demo_test_shift.py"


def test_demo_config_points_at_the_simulated_subject(tmp_path: Path) -> None:
    cfg, preset = demo_config(tmp_path, quick=True, seed=3, comparator=None, device="cpu")
    assert preset == "tiny"
    assert cfg.train.seed == 3 and cfg.train.device == "cpu"
    assert cfg.model.comparator == "efficientnet-lite0"
    assert cfg.data.train_fmri.startswith(str(tmp_path / "subject" / "fmri"))
    full, preset = demo_config(
        tmp_path, quick=False, seed=0, comparator="w.caffemodel", device="cpu"
    )
    assert preset == "demo"
    assert (full.model.comparator, full.model.comparator_path) == ("caffenet", "w.caffemodel")
    assert full.model.feature_layers == ("pool5",)


@pytest.mark.slow
def test_quick_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--quick", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["sets"]) == {"natural", "shapes", "letters"}
    for methods in summary["sets"].values():
        assert set(methods) == {"e2e", "ridge", "chance"}
        for method in ("e2e", "ridge"):
            scores = methods[method]
            low, mean, high = (
                scores["pixel_identification"][k] for k in ("ci_low", "mean", "ci_high")
            )
            assert 0.0 <= low <= mean <= high <= 1.0
            assert scores["feature_identification"]  # Lite2 early and late layers
    assert summary["comparator"]["kind"] == "efficientnet-lite0"
    assert "EfficientNet-Lite0" in summary["comparator"]["weights"]
    assert summary["wall_s"] > 0 and summary["peak_rss_mb"] > 0 and summary["seed"] == 0
    assert (out / "report" / "index.html").is_file()
    assert (out / "generator.pt").is_file()
    assert "Demo summary" in result.output
    _check_test_shift_benchmark(out)


def _check_test_shift_benchmark(run_dir: Path) -> None:
    """benchmarks/demo_test_shift.py reads a finished demo run (it broke once unnoticed)."""
    done = subprocess.run(
        [sys.executable, str(SHIFT_BENCHMARK), str(run_dir), "--resamples", "2"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for key in ("natural", "shapes", "letters"):
        snapshots = [name for name in result[key] if name.startswith("e2e@")]
        assert snapshots and 0.0 <= result[key]["ridge"] <= 1.0
        assert all(0.0 <= result[key][s]["published"] <= 1.0 for s in snapshots)


@pytest.mark.slow
def test_quick_demo_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    summaries = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = runner.invoke(app, ["demo", "--quick", "--out", str(out), "--device", "cpu"])
        assert result.exit_code == 0, result.output
        summaries.append(json.loads((out / "summary.json").read_text())["sets"])
    assert summaries[0] == summaries[1]
