"""Stimulus id <-> image name, as the lab converts them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from e2e_recon.data.labels import id_to_name, name_to_id
from e2e_recon.errors import DataError


def lab_formula(x: float) -> str:
    """The lab's conversion, written out as in its scripts."""
    return "n%08d_%d" % (int(("%f" % x).split(".")[0]), int(("%f" % x).split(".")[1]))  # noqa: UP031


def test_known_examples() -> None:
    assert id_to_name(1518878.005958) == "n01518878_5958"
    assert id_to_name(np.float64(2084071.000001)) == "n02084071_1"
    assert name_to_id("n01518878_5958") == 1518878.005958
    assert name_to_id("images/training/n01518878_5958.JPEG") == 1518878.005958


@given(st.integers(1, 15_000_000), st.integers(0, 999_999))
def test_round_trip_matches_lab_formula(synset: int, image: int) -> None:
    name = f"n{synset:08d}_{image}"
    stim_id = name_to_id(name)
    assert id_to_name(stim_id) == name == lab_formula(stim_id)


def test_float32_refused() -> None:
    with pytest.raises(DataError, match="float64"):
        id_to_name(np.float32(1518878.005958))


@pytest.mark.parametrize("bad", ["cat.jpg", "n0151_", "n01518878_1234567", ""])
def test_bad_names(bad: str) -> None:
    with pytest.raises(DataError, match="does not look like"):
        name_to_id(bad)


@pytest.mark.parametrize("bad", [float("nan"), -1.0, float("inf")])
def test_bad_ids(bad: float) -> None:
    with pytest.raises(DataError, match="not a valid id"):
        id_to_name(bad)
