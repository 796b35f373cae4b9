"""The speed benchmarks still run and print what their pages quote (smallest sizes).

They are timed by hand, not in tests; this only keeps them from breaking unnoticed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _run(script: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_comparator_speed_times_the_folded_and_the_unfolded_network() -> None:
    result = _run("comparator_speed.py", "--batch", "2", "--sizes", "64", "--repeats", "1")
    row = result["results"]["64"]
    for name in ("lite0:stage3", "lite0:stage3 (batch norm not folded)"):
        assert row[name]["min_s"] > 0 and row[name]["feature_shapes"] == {"stage3": "40x8x8"}
    assert row["lite0_stage3_folded_over_not_folded"]["min_s_ratio"] > 0
    assert result["cpu_model"]  # every figure beside the CPU it was measured on


def test_train_step_demo_preset_counts_flops() -> None:
    result = _run(
        "train_step.py", "--preset", "demo", "--batch", "2", "--iters", "1", "--precision", "fp32"
    )
    assert result["preset"] == "demo" and result["crop_px"] == 64 and result["batch"] == 2
    assert result["ms_per_iter"] > 0 and result["gflop_per_iter"] > 0
    assert "avx512_bf16" in result and result["cpu_model"]


def test_term_schedule_speed_skips_the_terms_not_due() -> None:
    result = _run(
        "term_schedule_speed.py", "--schedules", "1/1,2/2", "--batch", "2", "--rounds", "1"
    )
    every, half = result["schedules"]
    assert every["ratio"] == 1.0 and half["ms_per_iter"] > 0
    # Every other iteration without the discriminator and the comparator: fewer FLOPs.
    assert 0 < half["gflop_per_iter"] < 0.75 * every["gflop_per_iter"]
    assert result["cpu_model"] and result["iterations_per_round"] == 2
