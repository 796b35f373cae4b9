"""The report of a run whose files hold hostile text: nothing in them becomes markup.

Every field the page shows (metrics.json values and keys, config values, the run's
name, the subject, names in index.csv, file names of grids and images, the suites'
tables) is filled with a string that would run script were it not escaped; the page
must contain no element or attribute that came from them. And index.csv may not
bring a picture from outside ``recon/`` onto the page.
"""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from test_report import _decoded_images  # the page's embedded pictures

from e2e_recon.report.report import render_report

SCRIPT = "<script>alert({})</script>"
BREAKOUT = '"><img src=x onerror=alert({})>'  # no '/': it can name a file too


def hostile(field: str) -> str:
    """Markup naming ``field`` (lower-case), so its escaped text can be found on the page."""
    return SCRIPT.format(field) + BREAKOUT.format(field)


def file_hostile(field: str) -> str:
    return BREAKOUT.format(field) + "'<b>"


class _Tags(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _picture(value: int) -> np.ndarray:
    return np.full((40, 40, 3), value, dtype=np.uint8)


def _metrics(set_name: str, method: str) -> dict:
    score = {"mean": 0.8, "ci_low": 0.7, "ci_high": 0.9}
    key = hostile("metrickey")
    return {
        "images_dir": None,  # filled in below
        "settings": {
            "bootstrap": {"ci": 0.95, "resamples": hostile("resamples")},
            "chance": hostile("chancetext"),
            "stimulus_preparation": hostile("preparation"),
        },
        "metrics": [
            {"key": "pixid", "label": hostile("metriclabel"), "chance": 0.5},
            {"key": key, "label": None},
        ],
        "feature_networks": [
            {"label": hostile("netlabel"), "weights": hostile("netweights"), "layers": ["x"]}
        ],
        "baselines": {"ridge": {"alpha": 10.0, "selection": hostile("selection")}},
        "results": [
            {
                "set": set_name,
                "method": method,
                "n_images": hostile("nimages"),
                "scores": {"pixid": score, key: score},
            },
            {"set": set_name, "method": "chance", "scores": {"pixid": 0.5}},
        ],
        "comparisons": [
            {
                "set": hostile("pairset"),
                "method": hostile("pairmethod"),
                "baseline": hostile("pairbaseline"),
                "scores": {"pixid": {**score, "wins": 0.6}},
            },
        ],
        "suites": {
            "nsd": {
                "columns": [{"key": "c", "label": hostile("nsdcolumn"), "identification": True}],
                "rows": [
                    {
                        "set": hostile("nsdset"),
                        "method": hostile("nsdmethod"),
                        "n_images": hostile("nsdnimages"),
                        "scores": {"c": 0.9},
                    }
                ],
                "source": hostile("nsdsource"),
                "missing": {"c": hostile("nsdmissing")},
            },
            "kamitani": {
                "analyses": [{"key": "a", "label": hostile("kanalysis"), "chance": 0.5}],
                "feature_spaces": [{"key": "f", "label": hostile("kspace")}],
                "rows": [
                    {
                        "set": hostile("kset"),
                        "method": hostile("kmethod"),
                        "n_images": hostile("knimages"),
                        "scores": {"f": {"a": 0.7}},
                    }
                ],
                "distractors": {"source": hostile("kdistractors")},
                "source": hostile("ksource"),
                "missing": {"a": hostile("kmissing")},
            },
        },
    }


def make_hostile_run(tmp_path: Path) -> Path:
    """A run folder whose every shown field holds markup."""
    run_dir = tmp_path / ("00000-" + file_hostile("runname"))
    recon, images = run_dir / "recon", tmp_path / "images"
    set_name, method, stimulus = (
        file_hostile("setname"),
        file_hostile("method"),
        file_hostile("stim"),
    )
    (recon / method / set_name).mkdir(parents=True)
    images.mkdir()
    Image.fromarray(_picture(10)).save(images / f"{stimulus}.png")
    Image.fromarray(_picture(20)).save(recon / method / set_name / f"{stimulus}.png")
    with (recon / "index.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["method", "set", "stimulus_id", "stimulus_name", "n_trials", "mat", "tif", "png"]
        )
        writer.writerow(
            [method, set_name, "1.0", stimulus, "2", "", "", f"{method}/{set_name}/{stimulus}.png"]
        )
    metrics = _metrics(set_name, method)
    metrics["images_dir"] = str(images)
    (recon / "metrics.json").write_text(json.dumps(metrics))
    config = {
        "name": hostile("configname"),
        "data": {
            "subject": hostile("subject"),
            "train_fmri": hostile("trainfmri"),
            "test_fmri": [hostile("testfmri")],
            "images_dir": str(images),
            "roi": hostile("roi"),
            "crop_px": 40,
            "image_size_px": 40,
        },
        "model": {
            "comparator": hostile("comparator"),
            "comparator_path": hostile("cpath"),
            "feature_layers": [hostile("layer")],
        },
        "eval": {"feature_network": hostile("evalnet")},
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / "summary.json").write_text(
        json.dumps({"seed": 0, "comparator": hostile("summarycomparator")})
    )
    (run_dir / "stats.jsonl").write_text(
        "\n".join(json.dumps({"iteration": i, "loss_g": 1.0 / i}) for i in range(1, 5))
    )
    (run_dir / "report").mkdir()
    Image.fromarray(_picture(30)).save(
        run_dir / "report" / f"train_grid_iter{file_hostile('gridname')}.png"
    )
    return run_dir


FIELDS = [
    "runname",
    "setname",
    "method",
    "stim",
    "gridname",
    "subject",
    "trainfmri",
    "testfmri",
    "roi",
    "cpath",
    "layer",
    "configname",
    "summarycomparator",
    "metriclabel",
    "metrickey",
    "netlabel",
    "netweights",
    "resamples",
    "chancetext",
    "preparation",
    "selection",
    "pairset",
    "pairmethod",
    "pairbaseline",
    "nsdcolumn",
    "nsdset",
    "nsdmethod",
    "nsdnimages",
    "nsdsource",
    "nsdmissing",
    "kanalysis",
    "kspace",
    "kset",
    "kmethod",
    "knimages",
    "kdistractors",
    "ksource",
    "kmissing",
]


def test_no_hostile_value_becomes_markup(tmp_path: Path) -> None:
    page = render_report(make_hostile_run(tmp_path))
    parser = _Tags()
    parser.feed(page)
    for tag, attrs in parser.tags:
        assert tag != "script", "a <script> element reached the page"
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        if tag == "img":
            assert (attrs.get("src") or "").startswith("data:image/png;base64,"), attrs
    assert "<script>" not in page and "<img src=x" not in page and "<b>" not in page
    # Each field did reach the page (as text): otherwise the checks above prove nothing.
    shown = [field for field in FIELDS if f"alert({field})" in page]
    assert shown == FIELDS
    assert "could not be shown" not in page  # every section was built, none fell back


def test_report_never_embeds_a_picture_from_outside_recon(tmp_path: Path) -> None:
    run_dir = make_hostile_run(tmp_path)
    outside = tmp_path / "private.png"
    Image.fromarray(_picture(222)).save(outside)
    rows = list(csv.reader((run_dir / "recon" / "index.csv").open(newline="")))
    rows.append([*rows[1][:3], "other", "2", "", "", "../../private.png"])
    rows.append([*rows[1][:3], "other2", "2", "", str(outside), str(outside)])
    with (run_dir / "recon" / "index.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    page = render_report(run_dir)
    pictures = _decoded_images(page)
    assert any((image[..., :3] == 20).all() for image in pictures)  # the listed one, inside
    assert not any((image[..., :3] == 222).all() for image in pictures), "the outside file"
    assert "2 row(s) of index.csv name a file outside recon/" in page


def test_report_out_naming_a_folder_is_refused(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from e2e_recon.cli import app

    run_dir = make_hostile_run(tmp_path)
    folder = tmp_path / "shared"
    (folder / "keep").mkdir(parents=True)
    for option in ("--out", "--grid-png"):
        result = CliRunner().invoke(app, ["report", str(run_dir), option, str(folder)])
        assert result.exit_code == 2 and "is a folder" in result.output, result.output
        assert [p.name for p in folder.iterdir()] == ["keep"]
