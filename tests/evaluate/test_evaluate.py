"""Tests of evaluate_recon on tiny reconstruction folders made in tmp_path."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from rich.console import Console
from torch import nn

from e2e_recon.data.images import center_crop_uint8, load_image
from e2e_recon.errors import DataError
from e2e_recon.evaluate.evaluate import evaluate_recon, feature_net, metrics_table

COLUMNS = ["method", "set", "stimulus_id", "stimulus_name", "n_trials", "mat", "tif", "png"]


class TinyComparator(nn.Module):
    """Stand-in for a comparator: Caffe-space input, named features."""

    layer_names = ("conv1", "conv2")
    weights_label = "tiny random convnet (test)"

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 4, 5, stride=4)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2)

    def forward(self, x: torch.Tensor, layers: tuple[str, ...] = ("conv2",)) -> dict:
        h1 = torch.relu(self.conv1(x / 50))  # (B, 4, H/4, W/4)
        h2 = self.conv2(h1)  # (B, 6, H/8, W/8)
        return {name: {"conv1": h1, "conv2": h2}[name] for name in layers}


def _tiny_net() -> list:
    return [feature_net("tiny", TinyComparator())]


def _make_folder(
    tmp_path: Path, sets: dict[str, int], size_px: int = 227, seed: int = 0
) -> tuple[Path, Path]:
    """Stimuli in images/<set>/ and reconstructions: e2e = stimulus + noise, ridge = noise."""
    rng = np.random.default_rng(seed)
    recon_dir, images_dir = tmp_path / "recon", tmp_path / "images"
    rows = []
    for set_index, (set_name, n_images) in enumerate(sets.items()):
        (images_dir / set_name).mkdir(parents=True)
        for i in range(n_images):
            name = f"n{1000 + i:08d}_{set_index}{i}"
            stimulus = rng.integers(0, 256, size=(300, 260, 3), dtype=np.uint8)
            Image.fromarray(stimulus).save(images_dir / set_name / f"{name}.png")
            seen = center_crop_uint8(load_image(images_dir / set_name / f"{name}.png", 248), 227)
            if size_px != 227:
                seen = np.asarray(Image.fromarray(seen).resize((size_px, size_px)))
            for method, recon in (
                ("e2e", seen + rng.normal(scale=20, size=seen.shape)),
                ("ridge", rng.uniform(-10, 265, size=seen.shape)),
            ):
                folder = recon_dir / method / set_name
                folder.mkdir(parents=True, exist_ok=True)
                scipy.io.savemat(folder / f"{name}.mat", {"gen_img": recon})
                rel = f"{method}/{set_name}/{name}"
                rows.append(
                    [method, set_name, f"{1000 + i}.000001", name, "24", rel + ".mat", "", ""]
                )
    with (recon_dir / "index.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return recon_dir, images_dir


def test_evaluate_writes_metrics_and_per_image_scores(tmp_path: Path) -> None:
    recon_dir, images_dir = _make_folder(tmp_path, {"natural": 6, "letters": 3})
    result = evaluate_recon(
        recon_dir, images_dir, resolution_px=16, feature_nets=_tiny_net(), n_boot=50
    )
    keys = [m["key"] for m in result["metrics"]]
    assert keys == ["pixid", "pixid_16px", "pixcorr", "ssim", "tiny/conv1", "tiny/conv2"]
    rows = {(r["set"], r["method"]): r for r in result["results"]}
    assert list(rows) == [
        ("natural", "e2e"),
        ("natural", "ridge"),
        ("natural", "chance"),
        ("letters", "e2e"),
        ("letters", "ridge"),
        ("letters", "chance"),
    ]
    e2e = rows["natural", "e2e"]["scores"]
    assert e2e["pixid"]["mean"] == 1.0 and e2e["pixcorr"]["mean"] > 0.9
    assert e2e["tiny/conv2"]["mean"] == 1.0
    ridge = rows["natural", "ridge"]["scores"]
    assert ridge["pixcorr"]["ci_low"] <= ridge["pixcorr"]["mean"] <= ridge["pixcorr"]["ci_high"]
    chance = rows["natural", "chance"]["scores"]
    assert chance["pixid"] == {"mean": 0.5, "ci_low": None, "ci_high": None}
    assert abs(chance["pixcorr"]["mean"]) < 0.2  # independent random stimuli
    assert result["feature_networks"][0]["weights"] == "tiny random convnet (test)"
    assert json.loads((recon_dir / "metrics.json").read_text()) == result
    with (recon_dir / "per_image.csv").open() as handle:
        per_image = list(csv.DictReader(handle))
    assert len(per_image) == 18 and per_image[0]["method"] == "e2e"
    assert float(per_image[0]["pixid"]) == 1.0
    assert not list(recon_dir.glob(".*.tmp"))


def test_native_size_other_than_227_and_no_common_resolution(tmp_path: Path) -> None:
    recon_dir, images_dir = _make_folder(tmp_path, {"shapes": 4}, size_px=40)
    result = evaluate_recon(recon_dir, images_dir, resolution_px=None, feature_nets=(), n_boot=20)
    assert [m["key"] for m in result["metrics"]] == ["pixid", "pixcorr", "ssim"]
    assert result["results"][0]["image_size_px"] == 40
    assert result["results"][0]["scores"]["pixid"]["mean"] == 1.0


def test_metrics_table_shows_sets_methods_and_intervals(tmp_path: Path) -> None:
    recon_dir, images_dir = _make_folder(tmp_path, {"natural": 3})
    result = evaluate_recon(recon_dir, images_dir, resolution_px=8, feature_nets=(), n_boot=20)
    console = Console(record=True, width=200)
    console.print(metrics_table(result))
    text = console.export_text()
    for word in ("natural", "e2e", "ridge", "chance", "PixCorr", "SSIM", "0.500", "["):
        assert word in text


def test_missing_reconstruction_files_are_named(tmp_path: Path) -> None:
    recon_dir, images_dir = _make_folder(tmp_path, {"natural": 3})
    (recon_dir / "ridge" / "natural" / "n00001001_01.mat").unlink()
    with pytest.raises(DataError, match=r"ridge/natural/n00001001_01\.mat"):
        evaluate_recon(recon_dir, images_dir, feature_nets=())


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink", "png"])
def test_index_paths_outside_the_folder_are_refused_naming_the_row(
    tmp_path: Path, kind: str
) -> None:
    """index.csv paths are relative and stay inside --recon, symlinks resolved."""
    recon_dir, images_dir = _make_folder(tmp_path, {"natural": 3})
    secret = tmp_path / "private" / "secret.mat"
    secret.parent.mkdir()
    scipy.io.savemat(secret, {"gen_img": np.zeros((227, 227, 3))})
    if kind == "symlink":
        (recon_dir / "e2e" / "natural" / "n00001001_01.mat").unlink()
        (recon_dir / "e2e" / "natural" / "n00001001_01.mat").symlink_to(secret)
    path = {"absolute": str(secret), "dotdot": "../private/secret.mat", "png": ""}.get(kind)
    lines = (recon_dir / "index.csv").read_text().splitlines()
    fields = lines[3].split(",")  # line 4: e2e, natural, n00001001_01
    if kind == "png":  # any path column counts, also one evaluate would not read
        fields[7] = "../private/secret.png"
    elif path is not None:
        fields[5] = path
    lines[3] = ",".join(fields)
    (recon_dir / "index.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"index\.csv line 4 \(e2e, natural, n00001001_01\)"):
        evaluate_recon(recon_dir, images_dir, feature_nets=())
    assert not (recon_dir / "metrics.json").exists()


def test_stimulus_without_image_is_named(tmp_path: Path) -> None:
    recon_dir, images_dir = _make_folder(tmp_path, {"natural": 3})
    (images_dir / "natural" / "n00001002_02.png").unlink()
    with pytest.raises(DataError, match="n00001002_02"):
        evaluate_recon(recon_dir, images_dir, feature_nets=())


def test_two_different_images_for_one_stimulus_are_refused(tmp_path: Path) -> None:
    recon_dir, images_dir = _make_folder(tmp_path, {"natural": 2})
    (images_dir / "other").mkdir()
    Image.new("RGB", (8, 8)).save(images_dir / "other" / "n00001000_00.jpg")
    with pytest.raises(DataError, match="two different images"):
        evaluate_recon(recon_dir, images_dir, feature_nets=())


def test_fewer_than_two_images_is_undefined(tmp_path: Path) -> None:
    recon_dir, images_dir = _make_folder(tmp_path, {"letters": 1})
    with pytest.raises(DataError, match="undefined for fewer than 2 images"):
        evaluate_recon(recon_dir, images_dir, feature_nets=())


def test_missing_index_and_unknown_network(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"index\.csv not found"):
        evaluate_recon(tmp_path, tmp_path)
    recon_dir, images_dir = _make_folder(tmp_path, {"natural": 2})
    with pytest.raises(DataError, match="not known"):
        evaluate_recon(recon_dir, images_dir, feature_nets=("vgg99",))


@pytest.mark.slow
def test_default_feature_network_is_efficientnet_lite2(tmp_path: Path) -> None:
    recon_dir, images_dir = _make_folder(tmp_path, {"natural": 3}, size_px=64)
    result = evaluate_recon(recon_dir, images_dir, n_boot=10)
    net = result["feature_networks"][0]
    assert net["label"] == "effnet-lite2" and "EfficientNet-Lite2" in net["weights"]
    assert len(net["layers"]) == 2
    assert result["results"][0]["scores"]["effnet-lite2/head"]["mean"] is not None


def test_reconstructions_are_scored_as_display_images(tmp_path: Path) -> None:
    """A reconstruction right in shape but shifted below 0 and stretched (as the generator
    gives for inputs unlike its training set) scores as its display image does, not as
    what is left of it after clipping the raw values to 0-255."""
    recon_dir, images_dir = _make_folder(tmp_path, {"letters": 5})
    plain = evaluate_recon(recon_dir, images_dir, resolution_px=None, feature_nets=(), n_boot=20)
    for mat in (recon_dir / "e2e" / "letters").glob("*.mat"):
        raw = scipy.io.loadmat(mat)["gen_img"]
        scipy.io.savemat(mat, {"gen_img": 3.0 * raw - 700.0})  # nearly every value < 0
    shifted = evaluate_recon(recon_dir, images_dir, resolution_px=None, feature_nets=(), n_boot=20)
    before, after = plain["results"][0]["scores"], shifted["results"][0]["scores"]
    assert after["pixid"]["mean"] == 1.0
    assert after["pixcorr"]["mean"] == pytest.approx(before["pixcorr"]["mean"], abs=0.01)
    assert "display image" in shifted["settings"]["reconstruction_values"]
