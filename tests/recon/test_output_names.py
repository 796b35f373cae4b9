"""Names read from files never steer where reconstructions are written.

A BData header's ``set_name`` (written by ``e2e-recon import --set-name``, or by
anyone), a stimulus name and a method name each become part of an output path:
``../../X``, an absolute name or markup must be refused before anything is written.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from e2e_recon.cli import app
from e2e_recon.data.bdata import BData
from e2e_recon.data.dataset import NormStats, TestSet, load_test_set
from e2e_recon.errors import DataError
from e2e_recon.fileio import path_inside, safe_name
from e2e_recon.nets.generator import Generator
from e2e_recon.recon.reconstruct import ReconModel, reconstruct

runner = CliRunner()
HOSTILE = ["../../../X", "/tmp/abs", "..", ".", "", "a/b", "a\\b", "<b>x</b>", "c:x", ".hidden"]


def _files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


@pytest.mark.parametrize("name", HOSTILE)
def test_safe_name_refuses_what_could_leave_the_folder(name: str) -> None:
    with pytest.raises(DataError, match="cannot name a file"):
        safe_name(name, "set name")


def test_safe_name_keeps_ordinary_names() -> None:
    for name in ("natural", "e2e@iter0000020", "n01443537_22563", "sub-01 test", "ridge"):
        assert safe_name(name, "name") == name
    assert safe_name("sub-01", "--subject", plain=True) == "sub-01"
    with pytest.raises(DataError, match="--subject"):
        safe_name("sub 01", "--subject", plain=True)


def test_path_inside_resolves_dots_and_links(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    assert path_inside("a/b.png", out, "row 2") == out / "a" / "b.png"
    assert path_inside("a/../b.png", out, "row 2") == out / "a/../b.png"
    for bad in ("../x.png", "a/../../x.png", str(tmp_path / "x.png")):
        with pytest.raises(DataError, match="row 2"):
            path_inside(bad, out, "row 2")
    os.symlink(tmp_path, out / "link")
    with pytest.raises(DataError, match="outside"):
        path_inside("link/x.png", out, "row 2")


def _test_set(set_name: str, names: list[str]) -> TestSet:
    n = len(names)
    return TestSet(
        np.zeros((n, 5), np.float32), np.ones(n, np.int64), np.arange(n, dtype=np.float64),
        names, None, set_name,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("set_name", "names", "method"),
    [
        ("../../../X", ["n01_1"], "e2e"),
        ("ABSOLUTE", ["n01_1"], "e2e"),  # tmp_path / "abs-set"
        ("natural", ["../../n01_1"], "e2e"),
        ("natural", ["n01_1"], "../e2e"),
    ],
)
def test_reconstruct_writes_nothing_for_a_name_leading_outside(
    tmp_path: Path, set_name: str, names: list[str], method: str
) -> None:
    net = Generator(n_voxels=5, fc_width=16, output_size_px=64, base_channels=8)
    model = ReconModel(method, net, None, 60)  # type: ignore[arg-type]
    set_name = str(tmp_path / "abs-set") if set_name == "ABSOLUTE" else set_name
    good = _test_set("shapes", ["n02_1"])  # written first were it not checked up front
    out = tmp_path / "deep" / "er" / "out"
    with pytest.raises(DataError, match=r"cannot name a file|outside"):
        reconstruct([model], [good, _test_set(set_name, names)], out, "cpu")  # type: ignore[arg-type]
    assert _files_under(tmp_path) == set()


def _hostile_copy(source: str, folder: Path, set_name: str) -> Path:
    bdata = BData(source)
    bdata.header["set_name"] = set_name
    path = folder / Path(source).name
    bdata.save(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("set_name", ["../../../X", "ABSOLUTE", "<script>x"])
def test_header_set_name_cannot_steer_reconstruct(
    tiny_run: Path, tiny_subject: dict[str, Any], tmp_path: Path, set_name: str
) -> None:
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    set_name = str(tmp_path / "abs-set") if set_name == "ABSOLUTE" else set_name
    hostile = _hostile_copy(tiny_subject["files"]["test"], work, set_name)
    with pytest.raises(DataError, match="set_name in the header"):
        load_test_set(hostile, None, "ROI_VC = 1", NormStats(np.zeros(1), np.ones(1), "x"))
    before = _files_under(tmp_path)
    result = runner.invoke(
        app,
        ["reconstruct", "--generator", str(tiny_run / "generator.pt"),
         "--test-fmri", str(hostile), "--out", str(work / "recon")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "set_name in the header" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert _files_under(tmp_path) == before
    shutil.rmtree(work)


@pytest.mark.slow
@pytest.mark.parametrize("foreign", ["notes.txt", "index.csv"])
def test_reconstruct_never_writes_among_a_users_files(
    tiny_run: Path, tiny_subject: dict[str, Any], tmp_path: Path, foreign: str
) -> None:
    """A non-empty --out that reconstruct did not write (no index.csv of its own)."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / foreign).write_text("name,phone\nAda,123\n")
    (out / "geometry.json").write_text('{"mine": true}')
    before = {p: p.read_bytes() for p in out.rglob("*")}
    result = runner.invoke(
        app,
        ["reconstruct", "--generator", str(tiny_run / "generator.pt"),
         "--test-fmri", tiny_subject["files"]["test"], "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert str(out) in result.output and "index.csv" in result.output
    assert {p: p.read_bytes() for p in out.rglob("*")} == before
