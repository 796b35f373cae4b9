"""Tests of the HTML report on a small but realistic run directory made in tmp_path."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from e2e_recon.cli import app
from e2e_recon.config import load_config, save_config, with_overrides
from e2e_recon.errors import CheckpointError, DataError
from e2e_recon.evaluate.evaluate import evaluate_recon, feature_net
from e2e_recon.report.contents import method_title, resolve_path
from e2e_recon.report.metrics_file import parse_metrics
from e2e_recon.report.report import render_report, save_grid_png, write_report

SETS = {"natural": ("test", 6), "shapes": ("artificial", 4), "letters": ("letters", 2)}
FMRI = {
    "train": "sub-01_perceptionNaturalImageTraining_original_VC.h5",
    "natural": "sub-01_perceptionNaturalImageTest_original_VC.h5",
    "shapes": "sub-01_perceptionArtificialImage_original_VC.h5",
    "letters": "sub-01_perceptionLetterImage_original_VC.h5",
}
IMG_TAG = re.compile(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _picture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth colourful test picture, (size, size, 3) uint8."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    phase = rng.uniform(0, 2 * np.pi, size=3)
    channels = [np.sin(6 * xx + 4 * yy * (c + 1) + phase[c]) for c in range(3)]
    return ((np.stack(channels, axis=-1) + 1) * 127.5).astype(np.uint8)


def _write_subject(root: Path, rng: np.random.Generator) -> dict[str, list[str]]:
    """A simulated subject's layout: fmri/ (placeholders), images/, truth/."""
    (root / "fmri").mkdir(parents=True)
    for name in FMRI.values():
        (root / "fmri" / name).write_bytes(b"")
    (root / "truth").mkdir()
    truth = {"subject": "sub-01", "preset": "tiny", "seed": 0, "snr": 0.7, "n_voxels": 500}
    (root / "truth" / "summary.json").write_text(json.dumps(truth))
    names: dict[str, list[str]] = {}
    for set_name, (folder, count) in SETS.items():
        (root / "images" / folder).mkdir(parents=True)
        names[set_name] = [f"n0{set_name[:3]}{i:04d}_{i + 10}" for i in range(count)]
        for name in names[set_name]:
            Image.fromarray(_picture(rng, 80)).save(root / "images" / folder / f"{name}.JPEG")
    return names


def _write_recon(recon: Path, names: dict[str, list[str]], rng: np.random.Generator) -> None:
    """recon/index.csv with .mat/.png files for e2e, ridge and one e2e snapshot (natural)."""
    rows = []
    snapshot_sets = {"natural": SETS["natural"]}
    methods = {"e2e": SETS, "ridge": SETS, "e2e@iter0000020": snapshot_sets}
    methods["e2e@iter0000040"] = snapshot_sets
    for method, sets in methods.items():
        for set_name in sets:
            (recon / method / set_name).mkdir(parents=True)
            for i, name in enumerate(names[set_name]):
                image = _picture(rng, 56)
                rel = f"{method}/{set_name}/{name}"
                scipy.io.savemat(recon / f"{rel}.mat", {"gen_img": image.astype(np.float64)})
                Image.fromarray(image).save(recon / f"{rel}.png")
                rows.append(
                    {"method": method, "set": set_name, "stimulus_id": f"{i + 1}.0",
                     "stimulus_name": name, "n_trials": "10", "mat": f"{rel}.mat",
                     "tif": "", "png": f"{rel}.png"}
                )  # fmt: skip
    with (recon / "index.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


class _TinyFeatures(nn.Module):
    """A small random network standing in for the evaluation's feature network."""

    layer_names = ("conv",)
    weights_label = "tiny test network, random weights"

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, kernel_size=5, stride=4)

    def forward(self, x: torch.Tensor, layers: tuple[str, ...] = ("conv",)) -> dict:
        return {"conv": self.conv(x.float())}  # (B, 4, h, w)


def _write_metrics(recon: Path, images_dir: Path) -> None:
    """metrics.json and per_image.csv from the project's own evaluation."""
    nets = (feature_net("tiny", _TinyFeatures()),)
    evaluate_recon(recon, images_dir, resolution_px=28, feature_nets=nets, n_boot=50, device="cpu")


def _write_stats(path: Path, n_rows: int = 80) -> None:
    rng = np.random.default_rng(1)
    lines = []
    for k in range(n_rows):
        row = {
            "iteration": 10 * (k + 1), "loss_d_real": 0.5 + rng.random(), "loss_d_fake": 0.6,
            "image": 1e5 / (k + 1), "feature": 2e4 / (k + 1), "adversarial": 0.7 + rng.random(),
            "loss_g": 3.0, "ratio": 0.4 + rng.random(), "train_d": bool(k % 3), "train_g": True,
            "lr": 2e-4, "it_per_s": 5.0, "time": 1.7e9 + k,
        }  # fmt: skip
        if k % 10 == 9:
            row["val_pixel_identification"] = 0.6 + 0.003 * k
            row["val_loss_image"] = 2e5 / (k + 1)
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + '\n{"iteration": 9')  # torn last line, as after a crash


def make_run_dir(tmp_path: Path) -> Path:
    """A run directory as train + reconstruct + evaluate leave it, with a simulated subject."""
    rng = np.random.default_rng(0)
    subject = tmp_path / "sim"
    names = _write_subject(subject, rng)
    cfg = load_config(
        "demo",
        [
            f"data.train_fmri={subject / 'fmri' / FMRI['train']}",
            f"data.test_fmri=[{', '.join(str(subject / 'fmri' / FMRI[s]) for s in SETS)}]",
            f"data.images_dir={subject / 'images'}",
            "model.comparator=efficientnet-lite0",
        ],
    )
    run_dir = tmp_path / "runs" / "00000-sub-01-demo"
    (run_dir / "recon").mkdir(parents=True)
    save_config(cfg, run_dir / "config.yaml")
    _write_recon(run_dir / "recon", names, rng)
    _write_metrics(run_dir / "recon", subject / "images")
    _write_stats(run_dir / "stats.jsonl")
    (run_dir / "report").mkdir()
    for iteration in (10, 400, 800):  # progress grids saved by the trainer
        grid = np.concatenate([_picture(rng, 56) for _ in range(4)], axis=1)  # (56, 224, 3)
        Image.fromarray(grid).save(run_dir / "report" / f"train_grid_iter{iteration:07d}.png")
    summary = {"seed": 0, "wall_s": 12.5, "comparator": "EfficientNet-Lite0, ImageNet weights"}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A run directory and its report, made once for the tests that only read them."""
    run_dir = make_run_dir(tmp_path_factory.mktemp("built"))
    return run_dir, write_report(run_dir).read_text(encoding="utf-8")


@pytest.fixture
def run_dir(built: tuple[Path, str], tmp_path: Path) -> Path:
    """A copy of the built run directory to alter, without training statistics (the slowest
    part to draw); it shares the built run's simulated subject, which must stay unchanged."""
    run_dir = Path(shutil.copytree(built[0], tmp_path / "00001-sub-01-demo"))
    (run_dir / "stats.jsonl").unlink()
    shutil.rmtree(run_dir / "report")
    return run_dir


def _decoded_images(page: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b)))) for b in IMG_TAG.findall(page)]


def _section(page: str, key: str) -> str:
    match = re.search(rf'<section id="{key}">(.*?)</section>', page, flags=re.S)
    assert match is not None, f"section {key} missing"
    return match.group(1)


# --------------------------------------------------------------------------------------------
# Page content
# --------------------------------------------------------------------------------------------


def test_report_has_every_section_and_embeds_all_images(built: tuple[Path, str]) -> None:
    run_dir, page = built
    assert (run_dir / "report" / "index.html").is_file()
    for key in ("data", "recon", "metrics", "training", "snapshots", "config"):
        _section(page, key)
    n_grid = sum(3 * count for _, count in SETS.values())  # stimulus, e2e, ridge per image
    images = _decoded_images(page)
    assert len(images) == n_grid + 4  # + curves, first and last progress grid, snapshots
    assert len(IMG_TAG.findall(_section(page, "recon"))) == n_grid
    assert all(im.ndim == 3 and im.shape[0] > 0 for im in images)
    assert "missing" not in _section(page, "recon")
    per_image = (run_dir / "recon" / "per_image.csv").read_text().splitlines()
    first = dict(zip(per_image[0].split(","), per_image[1].split(","), strict=True))
    score = float(first["pixid"])
    caption = f"{method_title(first['method'])}: {first['stimulus_name']}"
    assert f'title="{caption} (pixel identification {score:.0%})"' in page


def test_report_is_self_contained(built: tuple[Path, str]) -> None:
    run_dir, page = built
    assert not re.search(r'(src|href)="(?!data:|#)', page)  # only embedded data and anchors
    assert "<link" not in page and "<script" not in page and "@import" not in page
    assert not list((run_dir / "report").glob("*.tmp"))


def test_data_statement_names_simulated_subject_and_comparator(built: tuple[Path, str]) -> None:
    data = _section(built[1], "data")
    assert "SIMULATED SUBJECT" in data
    assert "EfficientNet-Lite0, ImageNet weights" in data and "PRETRAINED" in data
    assert "Single-trial SNR</dt><dd>0.7<" in data  # from the subject's truth/summary.json
    assert "Simulation preset</dt><dd>tiny<" in data
    assert FMRI["natural"] in data and "Wall time (s)</dt><dd>12.5<" in data
    assert "Evaluation network</dt><dd>tiny: tiny test network, random weights<" in data


def test_random_comparator_is_labelled(run_dir: Path) -> None:
    cfg = with_overrides(load_config(run_dir / "config.yaml"), ["model.comparator=random-caffenet"])
    save_config(cfg, run_dir / "config.yaml")
    (run_dir / "summary.json").unlink()  # its comparator label would take precedence
    data = _section(render_report(run_dir), "data")
    assert "RANDOM WEIGHTS" in data and "RANDOM (untrained) weights" in data


def test_recorded_data_is_labelled_real(tmp_path: Path) -> None:
    (tmp_path / "lab" / "fmri").mkdir(parents=True)
    train = tmp_path / "lab" / "fmri" / FMRI["train"]
    train.write_bytes(b"")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save_config(load_config("paper", [f"data.train_fmri={train}"]), run_dir / "config.yaml")
    data = _section(render_report(run_dir), "data")
    assert "RECORDED fMRI" in data and "SIMULATED" not in data
    assert "CaffeNet, pretrained weights from the data home" in data


def test_metrics_table_shows_values_intervals_and_chance(built: tuple[Path, str]) -> None:
    run_dir, page = built
    table = _section(page, "metrics")
    content = json.loads((run_dir / "recon" / "metrics.json").read_text())
    row = next(r for r in content["results"] if (r["set"], r["method"]) == ("natural", "e2e"))
    score = row["scores"]["pixid"]
    expected = f'{100 * score["mean"]:.1f}%<span class="ci">[{100 * score["ci_low"]:.1f}%, '
    assert expected in table
    ssim = next(r for r in content["results"] if r["method"] == "ridge")["scores"]["ssim"]
    assert f"{ssim['mean']:.3f}<span" in table
    assert table.count(">Chance<") == 3 and "50.0%" in table
    assert table.count(">End-to-end<") == 3  # snapshots are not rows of the main table
    for metric in content["metrics"]:
        assert f"<th>{metric['label']}</th>" in table
    assert "tiny test network, random weights (layers conv)" in table


def test_parse_metrics_reads_the_evaluation_and_demo_forms(built: tuple[Path, str]) -> None:
    content = json.loads((built[0] / "recon" / "metrics.json").read_text())
    parsed = parse_metrics(content)
    assert list(parsed.sets) == ["natural", "shapes", "letters"]
    natural = parsed.sets["natural"]
    assert set(natural.methods) == {"e2e", "ridge", "e2e@iter0000020", "e2e@iter0000040"}
    assert natural.n_images == 6 and natural.chance["pixid"].value == 0.5
    assert parsed.is_identification("tiny/conv") and not parsed.is_identification("ssim")
    assert parse_metrics({"sets": content}).sets.keys() == parsed.sets.keys()  # summary.json
    pixel = {"value": 0.9, "ci": [0.8, 1.0]}
    simple = {
        "letters": {
            "methods": {"e2e": {"pixel_identification": pixel, "ssim": None}},
            "chance": {"pixel_identification": 0.5},
        }
    }
    letters = parse_metrics(simple).sets["letters"]
    assert letters.methods["e2e"]["pixel_identification"].low == 0.8
    assert letters.methods["e2e"]["ssim"].value is None


def test_training_curves_and_config(built: tuple[Path, str]) -> None:
    page = built[1]
    training = _section(page, "training")
    assert "80 logged rows" in training and "1 unreadable lines skipped" in training
    assert "iteration 10<" in training and "iteration 800<" in training
    assert "iteration 400<" not in training
    config = _section(page, "config")
    assert "efficientnet-lite0" in config and "summary.json" in config


# --------------------------------------------------------------------------------------------
# Missing and damaged parts
# --------------------------------------------------------------------------------------------


def test_bare_run_dir_gives_notes_not_errors(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save_config(load_config("demo"), run_dir / "config.yaml")
    page = write_report(run_dir, tmp_path / "elsewhere" / "page.html").read_text()
    assert "No reconstructions found" in page and "No metrics" in page
    assert "No training statistics" in page and "No snapshot reconstructions" in page
    assert "DATA ORIGIN UNKNOWN" in page


def test_missing_images_and_metrics_fallbacks(run_dir: Path) -> None:
    (run_dir / "recon" / "ridge" / "letters" / "n0let0001_11.png").unlink()
    (run_dir / "recon" / "ridge" / "letters" / "n0let0001_11.mat").unlink()
    (run_dir / "recon" / "e2e" / "shapes" / "n0sha0000_10.png").unlink()  # .mat remains
    (run_dir / "recon" / "metrics.json").write_text("{not json")
    page = render_report(run_dir)
    recon = _section(page, "recon")
    assert recon.count('class="missing"') == 1 and "1 image(s) missing" in recon
    assert "could not be read" in _section(page, "metrics")
    assert "No training statistics" in _section(page, "training")


def test_undefined_metric_and_summary_fallback(run_dir: Path) -> None:
    (run_dir / "recon" / "metrics.json").unlink()
    summary = {"letters": {"e2e": {"pixel_identification": None}, "chance": {}}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    table = _section(render_report(run_dir), "metrics")
    assert "undefined" in table and "Metrics read from summary.json" in table


def test_not_a_run_dir_raises(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a run directory"):
        write_report(tmp_path)


def test_cli_report_writes_page(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    assert CliRunner().invoke(app, ["report", str(tmp_path)]).exit_code == 2


# --------------------------------------------------------------------------------------------
# Stand-alone grid picture
# --------------------------------------------------------------------------------------------


def test_save_grid_png(run_dir: Path, tmp_path: Path) -> None:
    out = save_grid_png(run_dir, tmp_path / "grid.png", max_images=4)
    with Image.open(out) as image:
        width, height = image.size
    assert width > height > 100  # 4 columns, 3 rows
    with pytest.raises(DataError, match="no reconstructions of the 'faces' set"):
        save_grid_png(run_dir, tmp_path / "none.png", set_name="faces")


# --------------------------------------------------------------------------------------------
# The page in a real browser
# --------------------------------------------------------------------------------------------

_CHECK_SCRIPT = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.title = 'IMAGES ' + ok + '/' + imgs.length;
});
</script></body>"""


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)


def test_page_renders_in_headless_chromium(built: tuple[Path, str], tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    page = built[1]
    n_images = len(IMG_TAG.findall(page))
    # The report has no script of its own: a copy with a checking script is opened.
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", _CHECK_SCRIPT), encoding="utf-8")
    shot = tmp_path / "shot.png"
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
        "--virtual-time-budget=5000", "--window-size=1200,2000", f"--screenshot={shot}",
        "--dump-dom", probe.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"<title>IMAGES {n_images}/{n_images}</title>" in done.stdout
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    with Image.open(shot) as image:
        assert image.size == (1200, 2000)
        assert np.asarray(image.convert("L")).std() > 10  # not a blank page


def test_resolve_path_finds_paths_relative_to_where_the_command_ran(tmp_path: Path) -> None:
    # `e2e-recon demo` run from tmp_path writes paths like runs/00000-sim-demo/subject
    run = tmp_path / "runs" / "00000-sim-demo"
    (run / "subject").mkdir(parents=True)
    found = resolve_path("runs/00000-sim-demo/subject", run)
    assert found is not None and found.resolve() == (run / "subject").resolve()
    assert resolve_path("runs/00000-sim-demo/missing", run) is None
    assert resolve_path("", run) is None


def test_paired_comparisons_and_ridge_alpha_reach_the_page() -> None:
    from e2e_recon.report.metrics_file import parse_metrics
    from e2e_recon.report.paired import paired_table

    score = {"mean": 0.8, "ci_low": 0.7, "ci_high": 0.9}
    content = {
        "metrics": [{"key": "pixid", "label": "Pixel ident.", "chance": 0.5}],
        "results": [
            {"set": "natural", "method": m, "n_images": 10, "scores": {"pixid": score}}
            for m in ("e2e", "ridge")
        ],
        "comparisons": [
            {
                "set": "natural",
                "method": "e2e",
                "baseline": "ridge",
                "n_images": 10,
                "scores": {
                    "pixid": {
                        "mean": 0.05,
                        "ci_low": 0.01,
                        "ci_high": 0.09,
                        "wins": 0.7,
                        "excludes_zero": True,
                    }
                },
            }
        ],
        "baselines": {"ridge": {"alpha": 1234.5, "selection": "cv"}},
        "settings": {"stimulus_preparation": "resize 72 px (bilinear), centre 64 px, rgb"},
    }
    metrics = parse_metrics(content)
    (row,) = metrics.paired
    assert row.title == "e2e - ridge" and row.clear == {"pixid"} and row.wins["pixid"] == 0.7
    page = paired_table(metrics, ["pixid"])
    assert "+5.0 pt" in page and "wins 70%" in page and 'class="best"' in page
    assert any("alpha 1.23e+03 (cv)" in n for n in metrics.notes)
    assert any("centre 64 px" in n for n in metrics.notes)
