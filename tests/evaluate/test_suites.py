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


def _notebook_pixel_scores(recons: np.ndarray, stimuli: np.ndarray) -> tuple[float, float]:
    """PixCorr and SSIM in the order of MindEye's Reconstruction_Metrics notebook: images in
    0-1, ``Resize((256, 256))``, then ``Resize(425)`` (torchvision 0.14: bilinear, no
    antialiasing), flattened Pearson r; ``rgb2gray`` and SSIM with the notebook's settings."""
    import torch.nn.functional as F
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    def notebook(images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(images / 255.0).float().permute(0, 3, 1, 2)  # (N, 3, S, S)
        x = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
        return F.interpolate(x, size=(425, 425), mode="bilinear", align_corners=False)

    pred, true = notebook(recons), notebook(stimuli)
    flat_p, flat_t = pred.reshape(len(pred), -1).numpy(), true.reshape(len(true), -1).numpy()
    pixcorr = np.mean([np.corrcoef(t, p)[0][1] for t, p in zip(flat_t, flat_p, strict=True)])
    grey_p = rgb2gray(pred.permute(0, 2, 3, 1).numpy())
    grey_t = rgb2gray(true.permute(0, 2, 3, 1).numpy())
    ssim = np.mean(
        [
            structural_similarity(
                p,
                t,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
            )
            for p, t in zip(grey_p, grey_t, strict=True)
        ]
    )
    return float(pixcorr), float(ssim)


def test_nsd_resizes_to_256_first_as_the_notebook_does() -> None:
    """227 px images: the suite's PixCorr and SSIM equal the notebook's order of operations
    (256 px first, then 425 px); resizing straight to 425 px, as before, gives other numbers."""
    from e2e_recon.evaluate.nsd_suite import run_nsd
    from e2e_recon.evaluate.suite_common import NetSource, SuiteGroup

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(3, 12, 12, 3)).astype(np.float64)
    stimuli = np.kron(base, np.ones((1, 19, 19, 1)))[:, :227, :227]  # blocky 227 px images
    recons = np.clip(stimuli + rng.normal(scale=60, size=stimuli.shape), 0, 255).round()
    group = SuiteGroup("natural", "e2e", ("a", "b", "c"), recons, stimuli)
    want_pixcorr, want_ssim = _notebook_pixel_scores(recons, stimuli)
    for resize in ("notebook", "antialias"):  # 227 -> 256 -> 425 only enlarges: both agree
        table = run_nsd([group], NetSource(given={}), resize=resize)
        scores = table["rows"][0]["scores"]
        assert scores["pixcorr"] == pytest.approx(want_pixcorr, abs=2e-6)
        assert scores["ssim"] == pytest.approx(want_ssim, abs=2e-6)
        assert table["protocol"]["first_resize_px"] == 256 and table["protocol"]["resize"] == resize
    straight_ssim = _straight_ssim(recons, stimuli)
    assert abs(straight_ssim - want_ssim) > 1e-3  # the old order does not match the notebook


def _straight_ssim(recons: np.ndarray, stimuli: np.ndarray) -> float:
    from e2e_recon.evalnets.extract import resize_bilinear
    from e2e_recon.evaluate.metrics import ssim_scores

    pred, true = resize_bilinear(recons, 425), resize_bilinear(stimuli, 425)
    return float(np.mean(ssim_scores(pred, true, data_range=255.0, greyscale=True)))


def test_nsd_notebook_resize_does_not_antialias_and_metrics_json_says_how() -> None:
    """Images larger than 256 px: the notebook mode shrinks without antialiasing (as
    torchvision 0.14 did) and matches the notebook; the default antialiases and says so."""
    from e2e_recon.evaluate.nsd_suite import run_nsd
    from e2e_recon.evaluate.suite_common import NetSource, SuiteGroup

    rng = np.random.default_rng(1)
    stimuli = rng.integers(0, 256, size=(3, 512, 512, 3)).astype(np.float64)  # as diffusion output
    recons = np.clip(stimuli + rng.normal(scale=80, size=stimuli.shape), 0, 255).round()
    group = SuiteGroup("natural", "e2e", ("a", "b", "c"), recons, stimuli)
    notebook = run_nsd([group], NetSource(given={}), resize="notebook")
    want_pixcorr, _ = _notebook_pixel_scores(recons, stimuli)
    assert notebook["rows"][0]["scores"]["pixcorr"] == pytest.approx(want_pixcorr, abs=2e-6)
    default = run_nsd([group], NetSource(given={}))
    assert abs(default["rows"][0]["scores"]["pixcorr"] - want_pixcorr) > 1e-4  # antialiased
    protocol = default["protocol"]
    assert protocol["antialias"] is True and not notebook["protocol"]["antialias"]
    assert any("float16" in line for line in protocol["differences_from_notebook"])
    assert any("0.14.1" in line for line in protocol["differences_from_notebook"])
    assert set(protocol["versions"]) == {"torch", "scikit-image", "numpy"}
    with pytest.raises(ConfigError, match="--nsd-resize 'fast'"):
        SuiteOptions(nsd_resize="fast")
