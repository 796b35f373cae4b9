"""Malformed BData files: every one is a DataError naming the file, never another exception.

The deterministic cases below are the kinds an outside review found letting other
exceptions through (or exhausting memory); the Hypothesis tests generate more.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import tempfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from e2e_recon.data import bdata_checks
from e2e_recon.data.bdata import BData
from e2e_recon.errors import DataError, E2EReconError

VLEN = h5py.special_dtype(vlen=bytes)
REF = h5py.special_dtype(ref=h5py.Reference)


def write_valid(h5: h5py.File, n_keys: int = 3, n_cols: int = 4) -> None:
    """A small valid BData layout (as bdpy writes it)."""
    h5.create_dataset("dataset", data=np.ones((2, n_cols)))
    meta = h5.create_group("metadata")
    meta.create_dataset("key", data=[f"k{i}".encode() for i in range(n_keys)], dtype=VLEN)
    meta.create_dataset("description", data=[b"d"] * n_keys, dtype=VLEN)
    meta.create_dataset("value", data=np.ones((n_keys, n_cols)))
    header = h5.create_group("header")
    header.create_dataset("creator", data=b"test")
    h5.create_group("vmap").create_group("k0").create_dataset("1.0", data=b"one")


def _replace(h5: h5py.File, name: str, **kwargs: object) -> None:
    del h5[name]
    h5.create_dataset(name, **kwargs)  # type: ignore[arg-type]


def header_is_dataset(h5: h5py.File) -> None:
    del h5["header"]
    h5.create_dataset("header", data=np.zeros(3))


def dataset_1d(h5: h5py.File) -> None:
    _replace(h5, "dataset", data=np.zeros(4))


def dataset_3d(h5: h5py.File) -> None:
    _replace(h5, "dataset", data=np.zeros((2, 4, 1)))


def dataset_scalar(h5: h5py.File) -> None:
    _replace(h5, "dataset", data=1.0)


def dataset_of_strings(h5: h5py.File) -> None:
    _replace(h5, "dataset", data=np.array([[b"a", b"b"]] * 4).T)


def dataset_compound(h5: h5py.File) -> None:
    _replace(h5, "dataset", data=np.zeros((2, 4), dtype=[("a", "f8"), ("b", "i4")]))


def values_3d(h5: h5py.File) -> None:
    _replace(h5, "metadata/value", data=np.ones((3, 4, 2)))


def keys_are_numbers(h5: h5py.File) -> None:
    _replace(h5, "metadata/key", data=np.ones(3))


def matlab_codes_out_of_range(h5: h5py.File) -> None:
    _replace(h5, "metadata/key", data=np.array([[107, 0x110000]] * 3, dtype=np.uint32))


def matlab_codes_overflow(h5: h5py.File) -> None:
    _replace(h5, "metadata/key", data=np.array([[107, 2**63 + 5]] * 3, dtype=np.uint64))


def matlab_reference_to_a_group(h5: h5py.File) -> None:
    ds = h5.create_dataset("refs", shape=(3,), dtype=REF)
    for i in range(3):
        ds[i] = h5["metadata"].ref
    _replace(h5, "metadata/key", data=ds[()], dtype=REF)


def matlab_null_reference(h5: h5py.File) -> None:
    _replace(h5, "metadata/key", shape=(3,), dtype=REF)


def key_not_utf8(h5: h5py.File) -> None:
    _replace(h5, "metadata/key", data=[b"\xff\xfe", b"k1", b"k2"], dtype=VLEN)


def metadata_is_dataset(h5: h5py.File) -> None:
    del h5["metadata"]
    h5.create_dataset("metadata", data=np.zeros(2))


def dangling_link(h5: h5py.File) -> None:
    del h5["dataset"]
    h5["dataset"] = h5py.SoftLink("/nowhere")


def link_loop(h5: h5py.File) -> None:
    del h5["dataset"]
    h5["dataset"] = h5py.SoftLink("/loop")
    h5["loop"] = h5py.SoftLink("/dataset")


def header_entry_is_group(h5: h5py.File) -> None:
    h5["header"].create_group("nested")


def vmap_entry_not_a_number(h5: h5py.File) -> None:
    h5["vmap/k0"].create_dataset("one", data=b"x")


def vmap_key_is_dataset(h5: h5py.File) -> None:
    h5["vmap"].create_dataset("k1", data=b"x")


def descriptions_miscounted(h5: h5py.File) -> None:
    _replace(h5, "metadata/description", data=[b"d"] * 5, dtype=VLEN)


def billion_vlen_keys(h5: h5py.File) -> None:
    # Declared, never written: the file stays a few kilobytes.
    _replace(h5, "metadata/key", shape=(10**9,), dtype=VLEN, chunks=(1024,))


def huge_unwritten_dataset(h5: h5py.File) -> None:
    _replace(h5, "dataset", shape=(10**6, 10**6), dtype="f8", chunks=(64, 64))


MALFORMED: list[Callable[[h5py.File], None]] = [
    header_is_dataset,
    dataset_1d,
    dataset_3d,
    dataset_scalar,
    dataset_of_strings,
    dataset_compound,
    values_3d,
    keys_are_numbers,
    matlab_codes_out_of_range,
    matlab_codes_overflow,
    matlab_reference_to_a_group,
    matlab_null_reference,
    key_not_utf8,
    metadata_is_dataset,
    dangling_link,
    link_loop,
    header_entry_is_group,
    vmap_entry_not_a_number,
    vmap_key_is_dataset,
    descriptions_miscounted,
    billion_vlen_keys,
    huge_unwritten_dataset,
]


def _make(path: Path, damage: Callable[[h5py.File], None] | None) -> Path:
    with h5py.File(path, "w") as h5:
        write_valid(h5)
        if damage is not None:
            damage(h5)
    return path


def test_the_valid_layout_loads(tmp_path: Path) -> None:
    bd = BData(_make(tmp_path / "ok.h5", None))
    assert bd.metadata_keys == ["k0", "k1", "k2"]
    assert bd.get_labels("k0") == ["one", "one"]
    assert bd.header["creator"] == "test"


@pytest.mark.parametrize("damage", MALFORMED, ids=lambda f: f.__name__)
def test_malformed_file_is_a_data_error_naming_the_file(
    tmp_path: Path, damage: Callable[[h5py.File], None]
) -> None:
    path = _make(tmp_path / f"{damage.__name__}.h5", damage)
    with pytest.raises(DataError, match=damage.__name__):
        BData(path)


def test_billion_declared_keys_refused_before_reading(tmp_path: Path) -> None:
    path = _make(tmp_path / "keys.h5", billion_vlen_keys)
    assert path.stat().st_size < 100_000
    with pytest.raises(DataError, match=r"metadata/key .*\(1000000000,\)"):
        BData(path)


def test_declared_size_checked_against_available_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.h5"
    with h5py.File(path, "w") as h5:
        write_valid(h5, n_cols=1000)
    monkeypatch.setattr(bdata_checks, "available_memory_bytes", lambda: 20_000)
    with pytest.raises(DataError, match="GB is available"):
        BData(path)
    monkeypatch.setattr(bdata_checks, "available_memory_bytes", lambda: None)
    assert BData(path).n_cols == 1000


def test_available_memory_is_known_here() -> None:
    available = bdata_checks.available_memory_bytes()
    assert available is None or available > 0


# ------------------------------------------------------------------ generated files

_NODES = ["dataset", "metadata", "metadata/key", "metadata/value", "metadata/description"]
_NODES += ["header", "header/creator", "vmap", "vmap/k0", "vmap/k0/1.0"]

_dtypes = st.sampled_from(["f8", "f4", "i8", "u1", "u4", "u8", "S3", "bool", "vlen", "c16"])
_shapes = st.lists(st.integers(0, 5), min_size=0, max_size=4).map(tuple)


def _data(dtype: str, shape: tuple[int, ...], fill: int) -> np.ndarray:
    if dtype == "vlen":
        return np.full(shape, b"x" * (fill % 4), dtype=object)
    if dtype == "S3":
        return np.full(shape, b"abc")
    return np.full(shape, fill).astype(dtype)


@st.composite
def structural_damage(draw: st.DrawFn) -> list[tuple]:
    """A list of edits: replace a node with a group, a dataset or a link, or delete it."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        node = draw(st.sampled_from(_NODES))
        kind = draw(st.sampled_from(["group", "dataset", "delete", "link", "huge"]))
        dtype, shape = draw(_dtypes), draw(_shapes)
        fill = draw(st.sampled_from([0, 1, 107, 0x10FFFF + 1, 2**31 - 1, 2**63]))
        edits.append((node, kind, dtype, shape, fill))
    return edits


def _apply(h5: h5py.File, edit: tuple) -> None:
    # An earlier edit may have made this path unreachable (a link loop above it).
    with contextlib.suppress(RuntimeError, KeyError):
        _edit(h5, edit)


def _edit(h5: h5py.File, edit: tuple) -> None:
    node, kind, dtype, shape, fill = edit
    if node in h5:
        del h5[node]
    parent = node.rpartition("/")[0] or "/"
    if parent not in h5 or not isinstance(h5[parent], h5py.Group):
        return
    if kind == "group":
        h5.create_group(node)
    elif kind == "link":
        h5[node] = h5py.SoftLink(f"/{node}")  # a link to itself
    elif kind == "huge":
        dt = VLEN if dtype == "vlen" else ("f8" if dtype in ("S3", "c16") else dtype)
        h5.create_dataset(node, shape=(10**5, 10**5), dtype=dt, chunks=(16, 16))
    elif kind == "dataset":
        try:
            data = _data(dtype, shape, fill)
        except OverflowError:
            data = _data(dtype, shape, 1)
        h5.create_dataset(node, data=data, dtype=VLEN if dtype == "vlen" else None)


def _load_counting(path: Path) -> str:
    """Load ``path``; 'ok', 'project' (a project error naming the file) or the exception type."""
    try:
        BData(path)
    except E2EReconError as err:
        assert str(path) in str(err), str(err)
        return "project"
    except Exception as err:  # the test counts these: there must be none
        return f"{type(err).__name__}: {err}"
    return "ok"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=structural_damage())
def test_generated_structural_damage_gives_only_project_errors(edits: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "damaged.h5"
        with h5py.File(path, "w") as h5:
            write_valid(h5)
            for edit in edits:
                _apply(h5, edit)
        assert _load_counting(path) in ("ok", "project")


def _valid_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return _make(Path(folder) / "ok.h5", None).read_bytes()


def _load_in_child(path: Path, timeout_s: float = 20.0) -> str:
    """:func:`_load_counting` in a forked process: 'hang' or 'crash' if libhdf5 never returns.

    Byte-level damage can send libhdf5 itself into an endless loop or a segmentation
    fault (a damaged global heap, for instance), which no Python code can turn into
    an exception; the child keeps such a file from taking the test run with it.
    """
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=lambda: queue.put(_load_counting(path)))
    child.start()
    child.join(timeout_s)
    if child.is_alive():
        child.kill()
        child.join()
        return "hang"
    return queue.get() if child.exitcode == 0 else "crash"


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_generated_byte_damage_gives_only_project_errors(data: st.DataObject) -> None:
    blob = bytearray(_valid_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        offset = data.draw(st.integers(0, len(blob) - 1))
        blob[offset] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "damaged.h5"
        path.write_bytes(bytes(blob))
        outcome = _load_in_child(path)
    event(f"outcome: {outcome}")
    assert outcome in ("ok", "project", "hang", "crash")


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=structural_damage())
def test_many_generated_structural_damages(edits: list[tuple]) -> None:
    test_generated_structural_damage_gives_only_project_errors.hypothesis.inner_test(edits)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_many_generated_byte_damages(data: st.DataObject) -> None:
    test_generated_byte_damage_gives_only_project_errors.hypothesis.inner_test(data)


def test_command_line_exits_2_with_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from e2e_recon.cli import app

    fmri = tmp_path / "home" / "fmri"
    fmri.mkdir(parents=True)
    path = _make(fmri / "sub-01_perceptionNaturalImageTraining_original_VC.h5", header_is_dataset)
    result = CliRunner().invoke(
        app, ["check-data", "--subject", "sub-01", "--dest", str(tmp_path / "home")]
    )
    assert result.exit_code == 2, result.output
    assert path.name in result.output
    assert "Traceback" not in result.output
