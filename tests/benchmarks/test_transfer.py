"""benchmarks/transfer.py: the pooling, pairing and goal rules on made-up per-image scores.

The benchmark's training runs take minutes (its page quotes the command); these tests keep
the arithmetic that turns per-image scores into its verdict from breaking unnoticed.
"""

from __future__ import annotations

import argparse
from types import ModuleType

import numpy as np
import pytest
from load_benchmark import load_benchmark


@pytest.fixture(scope="module")
def transfer() -> ModuleType:
    return load_benchmark("transfer.py")


def _pool(rng: np.random.Generator, offsets: dict[str, float], n: int = 60) -> dict:
    """Per-image pixel and Lite2-head identification; each method a shift of one base."""
    base = rng.uniform(0.4, 0.8, size=n)
    pool: dict = {}
    for method, shift in offsets.items():
        noise = rng.normal(0, 0.01, size=n)
        for metric in ("pixid", "effnet-lite2/head"):
            extra = 2 * shift if metric == "effnet-lite2/head" else shift
            values = np.clip(base + extra + noise, 0, 1)
            pool.setdefault(method, {})[metric] = {f"0/img{i}": v for i, v in enumerate(values)}
    return pool


def test_pairs_compare_every_adapted_method_with_each_reference(transfer: ModuleType) -> None:
    pairs = transfer.pairs_of(["adapted", "adapted-act", "scratch", "ridge", "full"])
    assert ("adapted", "ridge") in pairs and ("adapted-act", "full") in pairs
    assert ("scratch", "ridge") in pairs and ("full", "ridge") in pairs
    assert len(pairs) == 2 * 3 + 2


def test_a_clear_gain_meets_the_goal_and_a_tie_does_not(transfer: ModuleType) -> None:
    rng = np.random.default_rng(0)
    pool = _pool(rng, {"adapted": 0.08, "ridge": 0.0, "scratch": 0.0, "full": 0.07})
    summary = {
        "means": transfer.means(pool),
        "paired": transfer.paired(pool, (("adapted", "ridge"), ("full", "ridge"))),
    }
    diff = summary["paired"]["adapted - ridge"]["pixid"]
    assert diff["mean"] == pytest.approx(0.08, abs=0.01) and diff["ci_low"] > 0
    goal = transfer.verdict(summary)
    assert goal["pixid_vs_ridge_met"] and goal["lite2_head_vs_ridge_met"] and goal["fraction_met"]
    assert goal["full_data_model"]["pixid_vs_ridge_met"]  # +0.07 pixels, +0.14 head

    tie = _pool(rng, {"adapted": 0.0, "ridge": 0.0, "full": 0.2})
    summary = {
        "means": transfer.means(tie),
        "paired": transfer.paired(tie, (("adapted", "ridge"),)),
    }
    goal = transfer.verdict(summary)
    assert goal["pixid_vs_ridge_met"] is False and goal["lite2_head_vs_ridge_met"] is False
    assert goal["fraction_met"] is False and goal["pixid_fraction_of_full"] < 0.95
    assert goal["full_data_model"]["pixid_vs_ridge_met"] is None  # no full - ridge pair given


def test_the_full_data_models_reach_shows_a_goal_beyond_every_sample(
    transfer: ModuleType,
) -> None:
    """A full-data model a little ahead of the ridge: the goal's margins are beyond it."""
    rng = np.random.default_rng(1)
    pool = _pool(rng, {"adapted": 0.01, "ridge": 0.0, "full": 0.02})
    summary = {
        "means": transfer.means(pool),
        "paired": transfer.paired(pool, transfer.pairs_of(list(pool))),
    }
    reach = transfer.verdict(summary)["full_data_model"]
    assert reach == {"pixid_vs_ridge_met": False, "lite2_head_vs_ridge_met": False}


def test_pairs_use_only_images_both_methods_scored(transfer: ModuleType) -> None:
    pool = {
        "adapted": {"pixid": {"0/a": 0.9, "0/b": 0.8, "1/a": float("nan")}},
        "ridge": {"pixid": {"0/a": 0.7, "0/b": 0.6, "1/c": 0.5}},
    }
    diff = transfer.paired(pool, (("adapted", "ridge"),))["adapted - ridge"]["pixid"]
    assert diff["n_images"] == 2 and diff["mean"] == pytest.approx(0.2)


def test_adapt_variants_parse_like_the_small_data_benchmark(transfer: ModuleType) -> None:
    args = argparse.Namespace(
        adapt_variant=["act=train.adapt_init=activations,train.adapt_finetune_lr_scale=0"]
    )
    assert transfer.variants(args) == {
        "": [],
        "act": ["train.adapt_init=activations", "train.adapt_finetune_lr_scale=0"],
    }
