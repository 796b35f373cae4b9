"""simulate_subjects / ``simulate --subjects N``: several subjects of either family.

One subject is the single-subject simulator's output, unchanged: the hashes below were
computed with the simulators as they were before ``--subjects`` existed (the project's
``tiny`` preset, seed 0; the pRF ``mixed`` family at the old tests' tiny size, seed 1).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from e2e_recon.cli import app
from e2e_recon.data.bdata import BData
from e2e_recon.data.labels import id_to_name
from e2e_recon.errors import ConfigError, DataError
from e2e_recon.sim import experiment as experiment_module
from e2e_recon.sim import simulate_subjects
from e2e_recon.sim.catalog import describe_presets
from e2e_recon.sim.presets import PRESETS, SimPreset
from e2e_recon.sim.prf.subject import simulate_prf_subject

runner = CliRunner()

#: :func:`tree_hash` of ``simulate_subject(out, preset="tiny", seed=0)`` before the change.
TINY_HASH = "c10d2adc0b9dd9a092bbb82d1a642b403653955e23f7972e6318b0177937343f"
#: :func:`tree_hash` of the old ``benchmarks/prf_subject.py`` subject at ``PRF_TINY``, seed 1.
PRF_HASH = "b610f7e0ca195774cb57a5fef7f1912e351fb430ec550b5fbcbb1ed6272515be"
PRF_TINY = dict(
    family="mixed",
    n_train=12,
    train_presentations=2,
    n_test=4,
    test_presentations=3,
    image_size_px=32,
    n_voxels=80,
)
PARTS = ("NaturalImageTraining", "NaturalImageTest", "ArtificialImage", "LetterImage")


def _bytes(value: Any) -> bytes:
    array = np.asarray(value)
    if array.dtype.kind in "OSU":  # strings: their text, not object pointers
        return repr(array.tolist()).encode()
    return np.ascontiguousarray(array).tobytes()


def tree_hash(root: Path) -> str:
    """SHA-256 of a simulated folder's content: HDF5 datasets (not the provenance
    header) and .npz arrays (their zip entries carry a time stamp), other files' bytes;
    ``summary.json`` is left out (it holds the wall time and absolute paths)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        if path.suffix == ".h5":
            with h5py.File(path, "r") as h5:

                def visit(name: str, obj: Any) -> None:
                    if isinstance(obj, h5py.Dataset) and not name.startswith("header"):
                        digest.update(name.encode() + _bytes(obj[()]))

                h5.visititems(visit)
        elif path.suffix == ".npz":
            with np.load(path) as arrays:
                for key in sorted(arrays.files):
                    digest.update(key.encode() + _bytes(arrays[key]))
        elif path.name != "summary.json":
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def micro(monkeypatch: pytest.MonkeyPatch) -> str:
    """A project preset smaller than tiny."""
    reps = {"training": 2, "test": 2, "artificial": 1, "letters": 1}
    monkeypatch.setitem(PRESETS, "micro", SimPreset("micro", 32, 120, 12, 4, reps))
    return "micro"


def _voxels(path: str | Path) -> np.ndarray:
    return BData(path).select("VoxelData")


@pytest.mark.slow
def test_one_subject_is_the_single_subject_simulator_unchanged(tmp_path: Path) -> None:
    summary = simulate_subjects(tmp_path / "api", "tiny", 1, seed=0, progress=False)
    assert tree_hash(tmp_path / "api") == TINY_HASH
    assert summary["subject"] == "sub-01" and "subjects" not in summary
    result = runner.invoke(app, ["simulate", "--preset", "tiny", "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert tree_hash(tmp_path / "cli") == TINY_HASH


def test_one_prf_subject_is_the_old_benchmark_simulator_unchanged(tmp_path: Path) -> None:
    simulate_prf_subject(tmp_path / "prf", snr=5.0, seed=1, **PRF_TINY)  # type: ignore[arg-type]
    assert tree_hash(tmp_path / "prf") == PRF_HASH
    simulate_subjects(tmp_path / "preset", "prf-tiny", 1, seed=1, snr=5.0, progress=False)
    assert tree_hash(tmp_path / "preset") == PRF_HASH  # prf-tiny is that size


def _check_two_subjects(out: Path, summary: dict[str, Any], parts: tuple[str, ...]) -> None:
    """Same stimuli and trials, own voxel counts and values, the documented layout."""
    assert summary["n_subjects"] == 2 and list(summary["subjects"]) == ["sub-01", "sub-02"]
    one, two = summary["subjects"]["sub-01"], summary["subjects"]["sub-02"]
    assert one["n_voxels"] != two["n_voxels"]
    for part in parts:
        a = BData(out / "fmri" / f"sub-01_perception{part}_original_VC.h5")
        b = BData(out / "fmri" / f"sub-02_perception{part}_original_VC.h5")
        np.testing.assert_array_equal(a.select("Label"), b.select("Label"))  # same trials
        np.testing.assert_array_equal(a.select("Run"), b.select("Run"))
        va, vb = a.select("VoxelData"), b.select("VoxelData")
        assert va.shape[0] == vb.shape[0] and va.shape[1] != vb.shape[1]
        n = min(va.shape[1], vb.shape[1])
        assert not np.allclose(va[:, :n], vb[:, :n])
    for name in ("sub-01", "sub-02"):
        truth = out / "truth" / name
        assert (truth / "encoding.npz").is_file() and (truth / "summary.json").is_file()
        written = json.loads((truth / "summary.json").read_text())
        assert written["n_voxels"] == summary["subjects"][name]["n_voxels"]
        files = summary["subjects"][name]["files"]
        assert all(Path(f).is_file() and Path(f).name.startswith(name) for f in files.values())
    assert json.loads((out / "truth" / "summary.json").read_text())["n_subjects"] == 2
    # One images/ folder: every subject's training ids name exactly its files.
    stems = {p.stem for p in (out / "images" / "training").iterdir()}
    for name in ("sub-01", "sub-02"):
        bdata = BData(out / "fmri" / f"{name}_perceptionNaturalImageTraining_original_VC.h5")
        assert {id_to_name(float(i)) for i in bdata.select("Label")[:, 1]} == stems
    assert not list(out.parent.glob(f".{out.name}.partial-*"))


def test_two_project_subjects_share_stimuli_and_trials(micro: str, tmp_path: Path) -> None:
    out = tmp_path / "exp"
    summary = simulate_subjects(out, micro, 2, seed=0, progress=False)
    _check_two_subjects(out, summary, PARTS)
    for name, info in summary["subjects"].items():
        assert 0.8 * 120 <= info["n_voxels"] <= 1.2 * 120
        assert (
            sum(info["roi_voxels"][r] for r in ("ROI_V1", "ROI_V2", "ROI_V3"))
            == (info["roi_voxels"]["ROI_LVC"])
        )
        assert "noise_ceiling_median_pct" in info["calibration"], name


def test_two_prf_subjects_share_stimuli_and_trials(tmp_path: Path) -> None:
    out = tmp_path / "exp"
    summary = simulate_subjects(out, "prf-tiny", 2, seed=1, snr=5.0, progress=False)
    _check_two_subjects(out, summary, PARTS[:2])
    assert summary["family"] == "prf" and summary["preset"] == "prf-tiny"
    assert len(list((out / "images").rglob("*.png"))) == 16  # 12 training + 4 test, once
    for info in summary["subjects"].values():
        assert 0 <= info["median_noise_ceiling_pct"] <= 100


@pytest.mark.parametrize("preset", [pytest.param("micro", marks=pytest.mark.slow), "prf-tiny"])
def test_the_same_seed_gives_the_same_experiment(preset: str, micro: str, tmp_path: Path) -> None:
    hashes = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        simulate_subjects(tmp_path / name, preset, 2, seed=seed, progress=False)
        hashes.append(tree_hash(tmp_path / name))
    assert hashes[0] == hashes[1] != hashes[2]


def test_subject_one_of_several_has_its_own_streams(tmp_path: Path) -> None:
    """With N > 1 subject 1 is drawn from its named streams, not the single subject's."""
    single = simulate_subjects(tmp_path / "one", "prf-tiny", 1, seed=1, progress=False)
    several = simulate_subjects(tmp_path / "two", "prf-tiny", 2, seed=1, progress=False)
    first = several["subjects"]["sub-01"]
    assert not np.array_equal(
        _voxels(single["files"]["test"])[:, :5], _voxels(first["files"]["test"])[:, :5]
    )
    for folder in ("training", "test"):  # the stimuli are the single subject's
        for png in (tmp_path / "one" / "images" / folder).iterdir():
            assert (
                png.read_bytes() == (tmp_path / "two" / "images" / folder / png.name).read_bytes()
            )


def test_a_failure_leaves_nothing_behind(
    micro: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls = experiment_module.build_subject, []

    def fails_on_the_second(*args: Any, **kwargs: Any) -> dict:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(experiment_module, "build_subject", fails_on_the_second)
    with pytest.raises(RuntimeError, match="disk full"):
        simulate_subjects(tmp_path / "exp", micro, 2, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("n_subjects", [1, 2])
def test_overwrite_never_replaces_a_users_folder(n_subjects: int, tmp_path: Path) -> None:
    """Both families, one subject or several: only a folder a simulation wrote is replaced."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(DataError, match=r"not a simulated subject.*delete it by hand"):
        simulate_subjects(mine, "prf-tiny", n_subjects, seed=0, progress=False, overwrite=True)
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    out = tmp_path / "exp"
    simulate_subjects(out, "prf-tiny", n_subjects, seed=0, progress=False)
    summary = simulate_subjects(out, "prf-tiny", n_subjects, seed=1, progress=False, overwrite=True)
    assert summary["seed"] == 1


@pytest.mark.parametrize("n", ["0", "-1", "100"])
def test_cli_refuses_a_bad_number_of_subjects(n: str, tmp_path: Path) -> None:
    out = tmp_path / "x"
    result = runner.invoke(
        app, ["simulate", "--preset", "prf-tiny", "--out", str(out), "--subjects", n]
    )
    assert result.exit_code == 2
    assert "--subjects must be between 1 and 99" in result.output and not out.exists()


def test_cli_refuses_a_subject_name_with_several_subjects(tmp_path: Path) -> None:
    args = ["simulate", "--preset", "prf-tiny", "--out", str(tmp_path / "x"), "--subjects", "2"]
    result = runner.invoke(app, [*args, "--subject", "sub-07"])
    assert result.exit_code == 2 and "leave --subject out" in result.output
    with pytest.raises(ConfigError, match="preset"):
        simulate_subjects(tmp_path / "y", "prf-huge", 2, progress=False)


def test_cli_writes_and_prints_every_subject(tmp_path: Path) -> None:
    out = tmp_path / "exp"
    args = ["simulate", "--preset", "prf-tiny", "--out", str(out), "--subjects", "3", "--snr", "5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("sub-01", "sub-02", "sub-03"):
        assert name in result.output
        assert (out / "fmri" / f"{name}_perceptionNaturalImageTraining_original_VC.h5").is_file()
    assert "ridge" in result.output and "noise ceiling" in result.output


def test_help_lists_the_presets_of_both_families() -> None:
    result = runner.invoke(app, ["simulate", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for name in describe_presets():
        assert name in result.output
    assert {"tiny", "demo", "prf-tiny", "prf-mixed-800x2", "prf-digits-90x1"} <= set(
        describe_presets()
    )
