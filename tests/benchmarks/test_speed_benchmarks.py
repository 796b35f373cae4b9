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
