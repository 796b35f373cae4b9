"""benchmarks/demo_compare.py: inside and outside the reference's intervals, on made-up runs."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from load_benchmark import load_benchmark


@pytest.fixture(scope="module")
def demo_compare() -> ModuleType:
    return load_benchmark("demo_compare.py")


def _score(mean: float) -> dict[str, float]:
    return {"mean": mean, "ci_low": mean - 0.02, "ci_high": mean + 0.02}


def _summary(folder: Path, seed: int, shift: float) -> Path:
    """A demo summary.json whose every figure is 0.5 + shift (interval +- 0.02)."""
    e2e = {name: _score(0.5 + shift) for name in ("pixel_identification", "pixcorr", "ssim")}
    e2e["feature_identification"] = {
        "effnet-lite2/stage3": _score(0.5 + shift), "effnet-lite2/head": _score(0.5 + shift),
    }  # fmt: skip
    sets: dict[str, Any] = {name: {"e2e": e2e} for name in ("natural", "shapes", "letters")}
    folder.mkdir()
    summary = {"seed": seed, "sets": sets, "wall_s": 100.0, "peak_rss_mb": 1500}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_each_figure_is_checked_against_the_reference_interval(
    demo_compare: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = _summary(tmp_path / "ref", 0, 0.0)
    demo_compare.main([str(reference), str(_summary(tmp_path / "near", 0, 0.015))])
    near = json.loads(capsys.readouterr().out)
    assert near["all_inside"] and near["inside"] == "15 of 15"
    assert near["sets"]["shapes"]["ssim"] == {
        "reference": 0.5, "interval": [0.48, 0.52], "candidate": 0.515, "inside": True,
        "below": False,
    }  # fmt: skip
    demo_compare.main([str(reference), str(_summary(tmp_path / "far", 0, -0.03))])
    far = json.loads(capsys.readouterr().out)
    assert not far["all_inside"] and far["inside"] == "0 of 15" and not far["none_below"]
    assert "shapes pixel_identification" in far["below"] and len(far["below"]) == 15
    demo_compare.main([str(reference), str(_summary(tmp_path / "better", 0, 0.05))])
    better = json.loads(capsys.readouterr().out)
    assert better["inside"] == "0 of 15" and better["none_below"]


def test_runs_of_different_seeds_are_refused(demo_compare: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        demo_compare.main(
            [str(_summary(tmp_path / "a", 0, 0)), str(_summary(tmp_path / "b", 1, 0))]
        )
