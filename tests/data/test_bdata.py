"""BData read/write and the selection grammar, checked against bdpy where installed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import h5py
import numpy as np
import pytest

from e2e_recon.data.bdata import BData, parse_selection
from e2e_recon.errors import DataError

EXPRESSIONS = [
    "ROI_VC = 1",
    "ROI_VC",
    "ROI_VC = 0",
    "ROI_V1 | ROI_V2",
    "ROI_V1 + ROI_V2",
    "ROI_VC - ROI_V1",
    "ROI_V1 | ROI_V2 & ROI_V3",
    "ROI_V3 & ROI_V2 | ROI_V1",
    "ROI_VC - ROI_V1 | ROI_V2",
    "ROI_V* = 1",
    "ROI_V*",
    "ROI_*",
    "(ROI_V1 | ROI_V2) & ROI_V2",
    "ROI_VC - (ROI_V1 | ROI_V2)",
    "ROI_V1=1|ROI_V2=1",
    "ROI_VC = 1 - ROI_V3 = 1",
    "VoxelData & ROI_hV4",
    "Label",
    "Label | Run | Session",
    "(ROI_V1 = 0) & VoxelData",
    "'ROI_V1' | \"ROI_V2\"",
]


def make_bdata(n_samples: int = 6, n_voxels: int = 12, seed: int = 0) -> BData:
    """A small BData shaped like the lab's files: voxels, ROIs, 2 label columns, run, session."""
    rng = np.random.default_rng(seed)
    bd = BData()
    bd.add(rng.normal(size=(n_samples, n_voxels)), "VoxelData")
    ids = np.array([1518878.005958, 1518878.005958, 2084071.000001, 2084071.000001, 3.000002, 3.0])
    bd.add(np.stack([np.arange(n_samples, dtype=float), ids[:n_samples]], axis=1), "Label")
    bd.add(np.repeat([1.0, 2.0], n_samples // 2), "Run")
    bd.add(np.ones(n_samples), "Session")
    roi = {
        "ROI_V1": np.arange(n_voxels) < 4,
        "ROI_V2": (np.arange(n_voxels) >= 3) & (np.arange(n_voxels) < 7),
        "ROI_V3": (np.arange(n_voxels) >= 6) & (np.arange(n_voxels) < 9),
        "ROI_hV4": np.arange(n_voxels) == 9,
        "ROI_HVC": np.arange(n_voxels) >= 10,
    }
    roi["ROI_VC"] = np.any(list(roi.values()), axis=0) & (np.arange(n_voxels) != 11)
    for key, mask in roi.items():
        bd.add_metadata(key, mask.astype(float), f"1 = {key}", where="VoxelData")
    bd.add_metadata("voxel_x", np.arange(n_voxels, dtype=float), "x", where="VoxelData")
    return bd


def test_round_trip(tmp_path: Path) -> None:
    bd = make_bdata()
    bd.add_vmap("Run", {1.0: "first", 2.0: "second"})
    bd.save(tmp_path / "a.h5")
    back = BData(tmp_path / "a.h5")
    np.testing.assert_array_equal(back.dataset, bd.dataset)
    assert back.metadata_keys == bd.metadata_keys
    for key in bd.metadata_keys:
        np.testing.assert_array_equal(back.metadata(key), bd.metadata(key))
        assert back.metadata_description(key) == bd.metadata_description(key)
    assert back.vmap == {"Run": {1.0: "first", 2.0: "second"}}
    assert back.get_labels("Run") == ["first"] * 3 + ["second"] * 3
    assert back.header["creator"] == "e2e-recon"
    assert [p.name for p in tmp_path.iterdir()] == ["a.h5"]  # no temporary left behind


def test_label_ids_stay_float64(tmp_path: Path) -> None:
    bd = make_bdata()
    bd.save(tmp_path / "a.h5")
    labels = BData(tmp_path / "a.h5").select("Label")
    assert labels.dtype == np.float64
    assert labels[0, 1] == 1518878.005958


def test_select_semantics() -> None:
    bd = make_bdata()
    vox = bd.metadata("VoxelData") == 1
    v1, v2, v3 = (bd.metadata(k) == 1 for k in ("ROI_V1", "ROI_V2", "ROI_V3"))
    np.testing.assert_array_equal(bd.select_index("ROI_V1 | ROI_V2 & ROI_V3"), (v1 | v2) & v3)
    np.testing.assert_array_equal(bd.select_index("ROI_V3 & ROI_V2 | ROI_V1"), (v3 & v2) | v1)
    # The gotcha: ROI_VC = 0 also returns the label, run and session columns.
    not_vc = bd.select_index("ROI_VC = 0")
    assert not_vc[~vox].all()
    assert not_vc[vox].sum() == 1
    np.testing.assert_array_equal(bd.get("Label"), bd.dataset[:, bd.metadata("Label") == 1])
    data, mask = bd.select("ROI_V1", return_index=True)
    assert data.shape == (6, 4) and mask.sum() == 4


def test_nested_parentheses_evaluated_as_written() -> None:
    bd = make_bdata()
    m = {k: bd.metadata(k) == 1 for k in bd.metadata_keys if k.startswith("ROI_")}
    got = bd.select_index("ROI_V1 & (ROI_V2 | (ROI_V3 & ROI_VC) | ROI_HVC)")
    np.testing.assert_array_equal(got, m["ROI_V1"] & (m["ROI_V2"] | (m["ROI_V3"]) | m["ROI_HVC"]))


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("ROI_XYZ = 1", "ROIs in this file: ROI_V1, ROI_V2, ROI_V3, ROI_hV4, ROI_HVC, ROI_VC"),
        ("ROI_V1 = 2", "selects no column"),
        ("ROI_V1 & ROI_HVC", "selects no column"),
        ("", "Empty selection"),
        ("(ROI_V1 | ROI_V2", "missing ')'"),
        ("ROI_V1 | ROI_V2)", "unexpected ')'"),
        ("ROI_V1 |", "ends where a key"),
        ("ROI_V1 = ROI_V2", "must be followed by a number"),
        ("'ROI_V1", "unclosed quote"),
    ],
)
def test_select_errors(expr: str, fragment: str) -> None:
    with pytest.raises(DataError, match=None) as info:
        make_bdata().select(expr)
    assert fragment in str(info.value)


def test_parse_is_left_associative() -> None:
    assert parse_selection("A - B | C") == [
        ("key", "A"),
        ("key", "B"),
        ("op", "-"),
        ("key", "C"),
        ("op", "|"),
    ]


def test_add_and_add_metadata_checks() -> None:
    bd = make_bdata()
    with pytest.raises(DataError, match="rows"):
        bd.add(np.zeros((5, 2)), "Extra")
    with pytest.raises(DataError, match="values but the dataset has"):
        bd.add_metadata("bad", np.zeros(3))
    with pytest.raises(DataError, match="not found"):
        bd.metadata("nope")
    n = bd.n_cols
    bd.add(np.zeros((6, 2)), "Run")  # existing key: old columns keep their values
    assert bd.n_cols == n + 2
    assert (bd.metadata("Run") == 1).sum() == 3


def test_old_names_and_matlab_transposed(tmp_path: Path) -> None:
    """dataSet/metaData names, arrays transposed, keys as MATLAB cellstr references."""
    bd = make_bdata()
    path = tmp_path / "matlab.mat"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("dataSet", data=bd.dataset.T)
        meta = h5.create_group("metaData")
        refs = h5.create_group("#refs#")
        ref_dtype = h5py.special_dtype(ref=h5py.Reference)
        for field, texts in (
            ("key", bd.metadata_keys),
            ("description", [bd.metadata_description(k) for k in bd.metadata_keys]),
        ):
            ds = meta.create_dataset(field, shape=(1, len(texts)), dtype=ref_dtype)
            for i, text in enumerate(texts):
                codes = np.array([[ord(c)] for c in text], dtype=np.uint16)
                ds[0, i] = refs.create_dataset(f"{field}{i}", data=codes).ref
        values = np.stack([bd.metadata(k) for k in bd.metadata_keys])
        meta.create_dataset("value", data=values.T)
    back = BData(path)
    np.testing.assert_array_equal(back.dataset, bd.dataset)
    assert back.metadata_keys == bd.metadata_keys
    np.testing.assert_array_equal(back.select("ROI_VC"), bd.select("ROI_VC"))


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        BData(tmp_path / "missing.h5")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(DataError, match="truncated"):
        BData(text)
    make_bdata().save(tmp_path / "full.h5")
    data = (tmp_path / "full.h5").read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=str(cut.name)):
        BData(cut)
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5.create_dataset("x", data=np.zeros(3))
    with pytest.raises(DataError, match="Is this a BData file"):
        BData(tmp_path / "other.h5")


def test_failed_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bd = make_bdata()

    def boom(self: BData, h5: h5py.File) -> None:
        h5.create_dataset("dataset", data=np.zeros(3))
        raise KeyboardInterrupt

    monkeypatch.setattr(BData, "_write_h5", boom)
    with pytest.raises(KeyboardInterrupt):
        bd.save(tmp_path / "x.h5")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ bdpy oracle


@pytest.mark.bdpy
def test_written_here_loads_in_bdpy(tmp_path: Path) -> None:
    bdpy = pytest.importorskip("bdpy")
    bd = make_bdata()
    bd.add_vmap("Run", {1.0: "first", 2.0: "second"})
    bd.save(tmp_path / "ours.h5")
    theirs = bdpy.BData(str(tmp_path / "ours.h5"))
    np.testing.assert_array_equal(theirs.dataset, bd.dataset)
    assert theirs.metadata.key == bd.metadata_keys
    for key in bd.metadata_keys:
        np.testing.assert_array_equal(theirs.get_metadata(key), bd.metadata(key))
    assert theirs.get_labels("Run") == bd.get_labels("Run")
    for expr in EXPRESSIONS:
        np.testing.assert_array_equal(theirs.select(expr), bd.select(expr), err_msg=expr)


@pytest.mark.bdpy
def test_written_by_bdpy_loads_here(tmp_path: Path) -> None:
    bdpy = pytest.importorskip("bdpy")
    ours = make_bdata()
    theirs = bdpy.BData()
    theirs.add(ours.get("VoxelData"), "VoxelData")
    theirs.add(ours.get("Label"), "Label")
    theirs.add(ours.get("Run"), "Run")
    theirs.add(ours.get("Session"), "Session")
    for key in ours.metadata_keys:
        if key.startswith("ROI_") or key == "voxel_x":
            theirs.add_metadata(
                key, ours.metadata(key)[ours.metadata("VoxelData") == 1], key, where="VoxelData"
            )
    theirs.add_vmap("Run", {1.0: "first", 2.0: "second"})
    theirs.save(str(tmp_path / "theirs.h5"))
    back = BData(tmp_path / "theirs.h5")
    np.testing.assert_array_equal(back.dataset, ours.dataset)
    for key in ours.metadata_keys:
        np.testing.assert_array_equal(back.metadata(key), theirs.get_metadata(key), err_msg=key)
    assert back.get_labels("Run") == theirs.get_labels("Run")
    assert "ctime" in back.header
    for expr in EXPRESSIONS:
        np.testing.assert_array_equal(back.select(expr), theirs.select(expr), err_msg=expr)
    # Re-saving a bdpy file (with its header) gives a file bdpy still reads.
    back.save(tmp_path / "again.h5")
    np.testing.assert_array_equal(bdpy.BData(str(tmp_path / "again.h5")).dataset, ours.dataset)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_file_mode_follows_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        make_bdata().save(tmp_path / "x.h5")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.h5").stat().st_mode) == 0o666 & ~umask
