"""Tests of ``e2e-recon experiment ablation`` and ``train-size`` on the tiny simulated subject."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from e2e_recon.cli import app
from e2e_recon.device import torch_threads
from e2e_recon.errors import ConfigError
from e2e_recon.experiments import ABLATION_CONDITIONS, default_sizes, run_ablation, run_train_size
from e2e_recon.experiments.train_size import size_conditions

#: The demo config shrunk to seconds: tiny networks, 4 iterations, a cheap feature network.
SHRINK = [
    "model.fc_width=64",
    "model.base_channels=16",
    "model.output_size_px=64",
    "model.comparator=random-caffenet",
    "model.feature_layers=[conv1]",
    "train.iters=4",
    "train.batch_size=4",
    "train.lr_halve_at_iters=[]",
    "train.snapshot_every_iters=4",
    "train.log_every_iters=2",
    "train.grid_every_iters=0",
    "train.device=cpu",
    "train.precision=fp32",
    "eval.bootstrap_samples=20",
    "eval.feature_network=random-caffenet",
    "eval.resolution_px=16",
]
SETS = ("natural", "shapes", "letters")


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def _csv_rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def ablation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    with torch_threads(1):
        return run_ablation(
            "demo", SHRINK, runs_dir=runs, sim_preset="tiny", progress=False, console=_quiet()
        )


@pytest.mark.slow
def test_ablation_trains_every_condition_with_its_loss_weights(ablation_dir: Path) -> None:
    assert ablation_dir.name.endswith("-sub-01-ablation")
    for name in ("results.csv", "results.json", "ablation.png", "base_config.yaml"):
        assert (ablation_dir / name).is_file(), name
    assert not list(ablation_dir.glob(".*.tmp"))
    weights = {}
    for condition in ABLATION_CONDITIONS:
        cfg = yaml.safe_load((ablation_dir / condition.name / "config.yaml").read_text())
        weights[condition.name] = cfg["loss"]
        assert (ablation_dir / condition.name / "recon" / "metrics.json").is_file()
    full = weights["all"]
    assert min(full["image_weight"], full["feature_weight"], full["adversarial_weight"]) > 0
    for name, key in [
        ("no-feature", "feature_weight"),
        ("no-adversarial", "adversarial_weight"),
        ("no-image", "image_weight"),
    ]:
        assert weights[name][key] == 0
        assert {k: v for k, v in weights[name].items() if k != key} == {
            k: v for k, v in full.items() if k != key
        }


@pytest.mark.slow
def test_ablation_table_has_every_condition_set_and_metric(ablation_dir: Path) -> None:
    rows = _csv_rows(ablation_dir)
    conditions = [c.name for c in ABLATION_CONDITIONS] + ["ridge", "chance"]
    assert list(dict.fromkeys(r["condition"] for r in rows)) == conditions
    metrics = {r["metric"] for r in rows}
    assert {"pixid", "pixcorr", "ssim"} <= metrics
    assert any(m.startswith("random-caffenet/") for m in metrics)
    for condition in conditions:
        found = {(r["set"], r["metric"]) for r in rows if r["condition"] == condition}
        assert found == {(s, m) for s in SETS for m in metrics}, condition
    for row in rows:
        if row["condition"] != "chance":
            assert float(row["ci_low"]) <= float(row["mean"]) <= float(row["ci_high"])
    # The ridge baseline is reconstructed once, in the all-losses run only.
    assert {r["run_dir"] for r in rows if r["condition"] == "ridge"} == {"all"}
    assert not (ablation_dir / "no-image" / "recon" / "ridge").exists()
    result = json.loads((ablation_dir / "results.json").read_text())
    assert [c["name"] for c in result["conditions"]] == conditions[:4]
    assert len(result["rows"]) == len(rows)
    assert Image.open(ablation_dir / "ablation.png").size[0] > 300


@pytest.mark.slow
def test_train_size_on_given_data(ablation_dir: Path, tmp_path: Path) -> None:
    fmri = ablation_dir / "subject" / "fmri"
    files = {p.name.split("_")[1]: p for p in fmri.glob("*.h5")}
    tests = [files[k] for k in ("perceptionNaturalImageTest", "perceptionLetterImage")]
    data = [
        f"data.train_fmri='{files['perceptionNaturalImageTraining']}'",
        f"data.test_fmri={json.dumps([str(p) for p in tests])}",
        f"data.images_dir='{ablation_dir / 'subject' / 'images'}'",
    ]
    with torch_threads(1):
        folder = run_train_size(
            "demo", [*SHRINK, *data], sizes=[10, 30], runs_dir=tmp_path, seed=1, console=_quiet()
        )
    assert folder.name.endswith("-train-size")
    assert not (folder / "subject").exists()  # the config named its data: nothing simulated
    for name in ("results.csv", "results.json", "train_size.png"):
        assert (folder / name).is_file(), name
    sizes = {}
    for name in ("n00010", "n00030", "all"):
        cfg = yaml.safe_load((folder / name / "config.yaml").read_text())
        sizes[name] = cfg["data"]["train_images"]
        assert cfg["train"]["seed"] == 1
    assert sizes == {"n00010": 10, "n00030": 30, "all": 0}
    rows = _csv_rows(folder)
    pixid = {(r["condition"], r["set"]): r for r in rows if r["metric"] == "pixid"}
    assert {c for c, _ in pixid} == {"n00010", "n00030", "all", "ridge", "chance"}
    assert {s for _, s in pixid} == {"natural", "letters"}
    assert pixid[("all", "natural")]["n_train_images"] == "60"  # the tiny preset's images
    assert pixid[("n00010", "letters")]["n_train_images"] == "10"
    assert Image.open(folder / "train_size.png").size[0] > 300


def test_default_sizes_are_a_geometric_series_below_the_training_set() -> None:
    assert default_sizes(1200) == [150, 300, 600]
    assert default_sizes(1000) == [125, 250, 500]
    assert default_sizes(5) == [2]


def test_size_conditions_add_the_full_set_once_and_refuse_impossible_sizes() -> None:
    conditions = size_conditions([60, 30, 10, 30], 60)
    assert [c.name for c in conditions] == ["n00010", "n00030", "all"]
    assert [c.ridge for c in conditions] == [False, False, True]
    assert conditions[-1].overrides == ("data.train_images=0",)
    with pytest.raises(ConfigError, match=r"outside 1\.\.60"):
        size_conditions([61], 60)


def test_no_data_without_simulation_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.train_fmri"):
        run_ablation("demo", [], runs_dir=tmp_path / "runs", sim=False, console=_quiet())
    with pytest.raises(ConfigError, match=r"data\.test_fmri"):
        run_train_size("demo", ["data.train_fmri=x.h5"], runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()  # checked before any folder is made


def test_cli_experiment_commands_have_help_and_check_sizes(tmp_path: Path) -> None:
    runner = CliRunner()
    for command in ("ablation", "train-size"):
        result = runner.invoke(app, ["experiment", command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Example:" in result.output and "--sim-preset" in result.output
    result = runner.invoke(
        app, ["experiment", "train-size", "--sizes", "10,abc", "--runs-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert not list(tmp_path.iterdir())
