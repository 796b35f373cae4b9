"""The nsd and kamitani suites end to end, with random-weight instances of their networks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console
from test_evaluate import _make_folder
from torch import nn

from e2e_recon.errors import ConfigError
from e2e_recon.evalnets.clip_vit import VisionTransformer, ViTShape
from e2e_recon.evalnets.registry import EVAL_NETS
from e2e_recon.evaluate.evaluate import evaluate_recon
from e2e_recon.evaluate.suites import SuiteOptions, parse_n_way, parse_suites, suite_tables

NSD_LABELS = [
    "PixCorr",
    "SSIM",
    "AlexNet(2)",
    "AlexNet(5)",
    "Inception",
    "CLIP",
    "EffNet-B",
    "SwAV",
]


def _random(key: str) -> nn.Module:
    torch.manual_seed(0)
    if key == "clip_vit_l14":  # ViT-L/14 is 1.2 GB: the same architecture, narrower
        return VisionTransformer(ViTShape(width=64, layers=2, output_dim=32))
    return EVAL_NETS[key].build()


def _print(result: dict) -> str:
    console = Console(width=250, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    for table in suite_tables(result):
        console.print(table)
    return console.export_text()


def test_parse_suites_and_n_way() -> None:
    assert parse_suites([]) == ("default",)
    assert parse_suites(["nsd,kamitani", "nsd"]) == ("nsd", "kamitani")
    with pytest.raises(ConfigError, match="'nds' is not a suite"):
        parse_suites(["nds"])
    assert parse_n_way("2, 5,10") == (2, 5, 10)
    with pytest.raises(ConfigError, match="2 or more"):
        parse_n_way("1,5")


def test_suites_without_weights_say_how_to_get_them(tmp_path: Path) -> None:
    """No networks: pixel columns are scored, network columns are empty, notices name the
    download command; the default table is not computed."""
    recon_dir, images_dir = _make_folder(tmp_path, {"natural": 4}, size_px=48)
    options = SuiteOptions(home=tmp_path / "home")
    result = evaluate_recon(
        recon_dir, images_dir, suites=["nsd", "kamitani"], suite_options=options,
        n_boot=10, device="cpu",
    )  # fmt: skip
    assert result["results"] == [] and result["metrics"] == []
    assert not (recon_dir / "per_image.csv").exists()
    nsd = result["suites"]["nsd"]
    assert [c["label"] for c in nsd["columns"]] == NSD_LABELS
    e2e, ridge = (r["scores"] for r in nsd["rows"])
    assert e2e["pixcorr"] > 0.5 > ridge["pixcorr"]  # e2e is the stimulus plus noise
    assert e2e["alexnet2"] is None and e2e["clip"] is None
    assert any("e2e-recon download eval-nets" in n for n in result["notices"])
    kamitani = result["suites"]["kamitani"]["rows"][0]["scores"]
    assert kamitani["pixel"]["pairwise_corr"] == 1.0
    assert kamitani["alexnet/conv1"] == {}
    printed = _print(result)
    assert "PixCorr ↑" in printed and "SwAV ↓" in printed and "missing networks" in printed
    on_disk = json.loads((recon_dir / "metrics.json").read_text())
    assert on_disk["suites"]["nsd"]["rows"] == nsd["rows"]


def test_default_only_output_is_unchanged(tmp_path: Path) -> None:
    recon_dir, images_dir = _make_folder(tmp_path, {"natural": 3}, size_px=32)
    result = evaluate_recon(recon_dir, images_dir, feature_nets=[], n_boot=10, device="cpu")
    assert "suites" not in result
    assert (recon_dir / "per_image.csv").exists()


def test_nsd_with_alexnet_and_clip_given(tmp_path: Path) -> None:
    """Given networks are used instead of the data home; absent ones are reported."""
    recon_dir, images_dir = _make_folder(tmp_path, {"natural": 4}, size_px=48)
    nets = {key: _random(key) for key in ("alexnet", "clip_vit_l14")}
    result = evaluate_recon(
        recon_dir, images_dir, suites=["nsd"], suite_options=SuiteOptions(nets=nets),
        n_boot=10, device="cpu",
    )  # fmt: skip
    scores = result["suites"]["nsd"]["rows"][0]["scores"]
    for key in ("alexnet2", "alexnet5", "clip"):
        assert 0.0 <= scores[key] <= 1.0
    assert scores["inception"] is None and scores["swav"] is None
    assert set(result["suites"]["nsd"]["missing"]) == {
        "inception_v3",
        "efficientnet_b1",
        "swav_resnet50",
    }
    printed = _print(result)
    assert "%" in printed  # identification printed as a percentage


@pytest.mark.slow
def test_every_network_of_both_suites_runs(tmp_path: Path) -> None:
    """The full architectures (random weights) through both suites, with distractors."""
    recon_dir, images_dir = _make_folder(tmp_path, {"natural": 3}, size_px=32)
    distractor_dir = tmp_path / "distractors"
    distractor_dir.mkdir()
    rng = np.random.default_rng(1)
    for i in range(5):
        image = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
        Image.fromarray(image).save(distractor_dir / f"d{i}.png")
    nets = {key: _random(key) for key in EVAL_NETS}
    options = SuiteOptions(nets=nets, n_way=(2, 5), distractors_dir=distractor_dir)
    result = evaluate_recon(
        recon_dir, images_dir, suites=["nsd", "kamitani"], suite_options=options,
        feature_nets=[], n_boot=10, device="cpu",
    )  # fmt: skip
    for row in result["suites"]["nsd"]["rows"]:
        assert all(value is not None for value in row["scores"].values()), row
        assert 0.0 <= row["scores"]["effnet"] <= 2.0
    kamitani = result["suites"]["kamitani"]
    assert kamitani["distractors"]["count"] == 5
    for row in kamitani["rows"]:
        for space in kamitani["feature_spaces"]:
            values = row["scores"][space["key"]]
            assert set(values) == {"pairwise_corr", "pairwise_euclid", "2way", "5way"}, space
    assert result["notices"] == [n for n in result["notices"] if "missing" not in n]
    printed = _print(result)
    assert "VGG19 fc8" in printed and "AlexNet conv1" in printed


def test_cli_prints_the_suites_and_how_to_get_weights(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from e2e_recon.cli import app

    recon_dir, images_dir = _make_folder(tmp_path, {"natural": 3}, size_px=32)
    args = ["evaluate", "--recon", str(recon_dir), "--images", str(images_dir)]
    args += ["--suite", "nsd", "--suite", "kamitani", "--n-way", "2", "--device", "cpu"]
    result = CliRunner().invoke(app, [*args, "--dest", str(tmp_path / "home")])
    assert result.exit_code == 0, result.output
    assert "NSD benchmark metrics" in result.output
    assert "Identification accuracy (Kamitani lab): natural, e2e" in result.output
    assert "e2e-recon download eval-nets" in result.output
    assert "Reconstruction metrics" not in result.output  # no default table asked for
    bad = CliRunner().invoke(app, [*args[:5], "--suite", "nds"])
    assert bad.exit_code == 2 and "not a suite" in bad.output


def test_report_shows_the_suite_tables(tmp_path: Path) -> None:
    from e2e_recon.report.suites import suites_html

    recon_dir, images_dir = _make_folder(tmp_path, {"natural": 3}, size_px=32)
    nets = {"alexnet": _random("alexnet")}
    evaluate_recon(
        recon_dir, images_dir, suites=["nsd", "kamitani"], n_boot=10, device="cpu",
        suite_options=SuiteOptions(nets=nets, n_way=(2,)),
    )  # fmt: skip
    page = suites_html(recon_dir)
    assert "NSD benchmark" in page and "AlexNet(2) ↑" in page and "SwAV ↓" in page
    assert "AlexNet conv1" in page and "2-way (corr.)" in page
    assert "Missing: CLIP ViT-L/14" in page
    assert "%</td>" in page  # identification in percent
    assert suites_html(tmp_path) == ""
