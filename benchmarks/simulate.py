"""Wall time and peak memory of ``simulate_subject`` per preset; prints one JSON object.

Each preset runs in a fresh child process, so peak memory (max RSS) is its own.
Goals (issue 4): demo under 60 s on 2 cores; paper under 10 minutes and 4 GB.

    .venv/bin/python benchmarks/simulate.py                 # demo only
    .venv/bin/python benchmarks/simulate.py --presets demo,paper
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from e2e_recon.device import cpu_info

GOALS = {"demo": {"wall_s": 60}, "paper": {"wall_s": 600, "peak_rss_gb": 4.0}}

CHILD = """
import json, sys, time
from e2e_recon.sim.subject import simulate_subject
start = time.perf_counter()
summary = simulate_subject(sys.argv[1], preset=sys.argv[2], seed=0, progress=False)
wall = time.perf_counter() - start
print(json.dumps({"wall_s": round(wall, 1), "summary": summary}))
"""


def run_preset(preset: str) -> dict:
    """Simulate one preset in a child process; return time, memory and key figures."""
    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(Path(tmp) / "subject"), preset],
            check=True,
            capture_output=True,
            text=True,
        )
        wall_outer = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        disk = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    child = json.loads(result.stdout.strip().splitlines()[-1])
    summary = child["summary"]
    cal = summary["calibration"]
    return {
        "wall_s": child["wall_s"],
        "wall_s_with_imports": round(wall_outer, 1),
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
        "peak_rss_gb": round(after.ru_maxrss / 1024**2, 2),  # ru_maxrss is in KiB on Linux
        "disk_mb": round(disk / 1024**2, 1),
        "n_voxels": summary["n_voxels"],
        "samples": {k: v["samples"] for k, v in summary["sets"].items()},
        "snr": summary["snr"],
        "ridge_pairwise_identification": round(summary["ridge_pairwise_identification"], 3),
        "noise_ceiling_median_pct": cal["noise_ceiling_median_pct"],
        "reliability_quantiles": cal["reliability_quantiles"],
        "goal": GOALS.get(preset, {}),
    }


def main() -> None:
    """Parse arguments, run the presets, print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", default="demo", help="comma-separated preset names")
    args = parser.parse_args()
    report = {"benchmark": "simulate_subject", **cpu_info(), "load_avg_1min": os.getloadavg()[0]}
    report["presets"] = {p: run_preset(p) for p in args.presets.split(",")}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
