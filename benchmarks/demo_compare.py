"""Does a changed demo keep the figures? One demo run's end-to-end figures against another's.

For each test set (natural, shapes, letters) and figure (pixel identification, PixCorr,
SSIM, Lite2 stage3 and head identification), the candidate run's mean and whether it lies
inside the reference run's 95% bootstrap interval or below it (a loss); also both runs'
wall time and peak memory from their ``summary.json``. Both runs should be of the same seed
(the same simulated subject): the intervals are over that subject's test images.

Usage: .venv/bin/python benchmarks/demo_compare.py REFERENCE_RUN CANDIDATE_RUN
Prints one JSON object; ``all_inside`` is true when every candidate figure is inside,
``none_below`` when none is below.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SETS = ("natural", "shapes", "letters")
FIGURES = {
    "pixel_identification": ("pixel_identification",),
    "pixcorr": ("pixcorr",),
    "ssim": ("ssim",),
    "lite2_stage3": ("feature_identification", "effnet-lite2/stage3"),
    "lite2_head": ("feature_identification", "effnet-lite2/head"),
}


def _figure(scores: dict[str, Any], path: tuple[str, ...]) -> dict[str, float]:
    for key in path:
        scores = scores[key]
    return scores


def compare(reference: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any]:
    """Per set and figure: the reference's mean and interval, the candidate's mean, inside."""
    out: dict[str, Any] = {}
    for name in SETS:
        ref_scores, new_scores = reference["sets"][name]["e2e"], candidate["sets"][name]["e2e"]
        rows = {}
        for figure, path in FIGURES.items():
            ref, new = _figure(ref_scores, path), _figure(new_scores, path)
            rows[figure] = {
                "reference": round(ref["mean"], 3),
                "interval": [round(ref["ci_low"], 3), round(ref["ci_high"], 3)],
                "candidate": round(new["mean"], 3),
                "inside": ref["ci_low"] <= new["mean"] <= ref["ci_high"],
                "below": new["mean"] < ref["ci_low"],
            }
        out[name] = rows
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reference", type=Path, help="a demo run folder (summary.json)")
    parser.add_argument("candidate", type=Path, help="another demo run folder, same seed")
    args = parser.parse_args(argv)
    runs = [json.loads((p / "summary.json").read_text()) for p in (args.reference, args.candidate)]
    if runs[0].get("seed") != runs[1].get("seed"):
        parser.error(f"the runs are of seeds {runs[0].get('seed')} and {runs[1].get('seed')}")
    sets = compare(*runs)
    inside = [row["inside"] for rows in sets.values() for row in rows.values()]
    below = [f"{name} {figure}" for name, rows in sets.items() for figure, row in rows.items()
             if row["below"]]  # fmt: skip
    print(json.dumps({
        "seed": runs[0].get("seed"),
        "wall_s": [r.get("wall_s") for r in runs],
        "peak_rss_mb": [r.get("peak_rss_mb") for r in runs],
        "sets": sets,
        "inside": f"{sum(inside)} of {len(inside)}",
        "all_inside": all(inside),
        "below": below,
        "none_below": not below,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
