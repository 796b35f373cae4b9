"""The selection grammar on bare metadata arrays, without a BData file."""

from __future__ import annotations

import numpy as np
import pytest

from e2e_recon.data import bdata
from e2e_recon.data.selection import parse_selection, select_columns
from e2e_recon.errors import DataError

# Five columns: three voxels (V1, V1, V2) and two label columns (no ROI value).
KEYS = ["VoxelData", "ROI_V1", "ROI_V2", "Label"]
VALUES = np.array(
    [
        [1, 1, 1, np.nan, np.nan],
        [1, 1, 0, np.nan, np.nan],
        [0, 0, 1, np.nan, np.nan],
        [np.nan, np.nan, np.nan, 1, 1],
    ]
)


def _missing(key: str) -> str:
    return f"no key {key!r} here"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("ROI_V1", [1, 1, 0, 0, 0]),
        ("ROI_V*", [1, 1, 1, 0, 0]),
        ("ROI_V1 | ROI_V2", [1, 1, 1, 0, 0]),
        ("VoxelData - ROI_V1", [0, 0, 1, 0, 0]),
        # bdpy's '=': 'not 1', so the label columns come with it.
        ("ROI_V1 = 0", [0, 0, 1, 1, 1]),
        ("ROI_V1 | ROI_V2 & ROI_V2", [0, 0, 1, 0, 0]),
        ("ROI_V1 | (ROI_V2 & ROI_V2)", [1, 1, 1, 0, 0]),
    ],
)
def test_select_columns_on_arrays(expr: str, expected: list[int]) -> None:
    mask = select_columns(expr, KEYS, VALUES, _missing)
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, np.array(expected, dtype=bool))


def test_missing_key_message_comes_from_the_caller() -> None:
    with pytest.raises(DataError, match="no key 'ROI_HVC' here"):
        select_columns("ROI_V1 | ROI_HVC", KEYS, VALUES, _missing)


def test_old_import_path_still_works() -> None:
    assert bdata.parse_selection is parse_selection
