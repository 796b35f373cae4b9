"""The second simulator family (``e2e_recon.sim.prf``) read through e2e-recon's loaders.

The module writes its BData files with h5py directly, so these tests also check the
reader on a layout it did not write: keys stored as fixed-length byte strings, the
stimulus id only in column 1 of ``Label``, voxels outside ``ROI_VC``.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from PIL import Image

from e2e_recon.data.bdata import BData
from e2e_recon.data.dataset import load_test_set, load_training_set
from e2e_recon.data.labels import id_to_name
from e2e_recon.errors import ConfigError, DataError
from e2e_recon.sim import prf as prf_package
from e2e_recon.sim.prf import stimuli as prf_stimuli
from e2e_recon.sim.prf import subject as prf

SIM_PRF = Path(prf_package.__file__).parent

TINY = dict(
    family="mixed",
    n_train=12,
    train_presentations=2,
    n_test=4,
    test_presentations=3,
    image_size_px=32,
    n_voxels=80,
)
TINY_DIGITS = dict(
    family="digits",
    n_train=10,
    train_presentations=1,
    n_test=3,
    test_presentations=2,
    image_size_px=28,
    n_voxels=60,
)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("prf") / "mixed"
    return prf.simulate_prf_subject(out, snr=5.0, seed=1, **TINY)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("prf") / "digits"
    return prf.simulate_prf_subject(out, snr=5.0, seed=2, **TINY_DIGITS)


def _raw(path: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Dataset, keys and metadata values read with h5py alone."""
    with h5py.File(path, "r") as h5:
        keys = [k.decode() for k in h5["metadata/key"][()]]
        return h5["dataset"][()], keys, h5["metadata/value"][()]


def test_summary_is_a_drop_in_for_the_project_simulator(mixed: dict[str, Any]) -> None:
    assert set(mixed["files"]) == {"training", "test"}
    assert all(Path(p).is_file() for p in mixed["files"].values())
    assert Path(mixed["images_dir"]).is_dir()
    assert (mixed["seed"], mixed["snr"], mixed["n_voxels"], mixed["image_size_px"]) == (
        1,
        5.0,
        80,
        32,
    )
    assert mixed["sets"]["training"] == {"images": 12, "repetitions": 2, "samples": 24}
    assert mixed["sets"]["test"] == {"images": 4, "repetitions": 3, "samples": 12}
    written = json.loads((Path(mixed["truth_dir"]) / "summary.json").read_text())
    assert written == json.loads(json.dumps(mixed))


def test_roi_vc_selects_the_visual_cortex_voxels_and_ids_sit_in_label_column_1(
    mixed: dict[str, Any],
) -> None:
    keys = _raw(mixed["files"]["training"])[1]
    assert "stimulus_id" not in keys and "stimulus_name" not in keys
    bdata = BData(mixed["files"]["training"])
    vc = bdata.select("ROI_VC = 1")
    assert vc.shape == (24, mixed["roi_voxels"]["ROI_VC"])
    assert 0 < vc.shape[1] < 80  # some voxels lie outside visual cortex
    label = bdata.select("Label")
    assert label.shape == (24, 2)
    names = {id_to_name(float(i)) for i in label[:, 1]}
    stems = {p.stem for p in (Path(mixed["images_dir"]) / "training").iterdir()}
    assert names == stems


def test_labels_pair_each_trial_with_the_image_that_drove_it(
    mixed: dict[str, Any], tmp_path: Path
) -> None:
    """At high SNR a trial correlates best with the noiseless response of its own image."""
    files, images_dir = mixed["files"], mixed["images_dir"]
    training = load_training_set(files["training"], images_dir, "ROI_VC = 1", 32, tmp_path)
    truth = np.load(Path(mixed["truth_dir"]) / "noiseless_training.npz")
    vc = BData(files["training"]).metadata("ROI_VC")[4:] == 1  # after Run, Session, Label x2
    sorter = np.argsort(truth["stimulus_id"])
    signal = truth["signal"][sorter][:, vc]  # (M, V) in the loader's id order
    assert np.array_equal(truth["stimulus_id"][sorter], training.stimulus_ids)
    corr = np.corrcoef(training.voxels, signal)[: len(training.voxels), len(training.voxels) :]
    assert np.array_equal(corr.argmax(axis=1), training.image_index)
    for row, stim_id in enumerate(training.stimulus_ids):
        name = id_to_name(float(stim_id))
        rgb = np.asarray(Image.open(Path(images_dir) / "training" / f"{name}.png").convert("RGB"))
        assert np.array_equal(training.images[row][..., ::-1], rgb)  # the cache is BGR


def test_test_presentations_are_averaged_per_image(mixed: dict[str, Any], tmp_path: Path) -> None:
    files, images_dir = mixed["files"], mixed["images_dir"]
    training = load_training_set(files["training"], images_dir, "ROI_VC = 1", 32, tmp_path)
    test = load_test_set(files["test"], images_dir, "ROI_VC = 1", training.norm, 32, tmp_path)
    assert test.set_name == "natural"
    assert test.n_trials.tolist() == [3, 3, 3, 3]
    data, keys, values = _raw(files["test"])
    vc = values[keys.index("ROI_VC")] == 1
    ids = data[:, values[keys.index("Label")] == 1][:, 1]
    expected = np.stack([data[ids == i][:, vc].mean(axis=0) for i in np.unique(ids)])
    expected = (expected - training.norm.mean) / training.norm.std
    np.testing.assert_allclose(test.voxels, expected, rtol=1e-4, atol=1e-4)


def test_the_same_seed_writes_the_same_subject(tmp_path: Path) -> None:
    small = {**TINY, "n_train": 5, "n_test": 2, "n_voxels": 30}
    a = prf.simulate_prf_subject(tmp_path / "a", seed=3, **small)
    b = prf.simulate_prf_subject(tmp_path / "b", seed=3, **small)
    c = prf.simulate_prf_subject(tmp_path / "c", seed=4, **small)
    for key in ("training", "test"):
        assert np.array_equal(_raw(a["files"][key])[0], _raw(b["files"][key])[0])
        assert not np.array_equal(_raw(a["files"][key])[0], _raw(c["files"][key])[0])
    pngs = sorted((Path(a["images_dir"]) / "training").iterdir())
    for path in pngs:
        twin = Path(b["images_dir"]) / "training" / path.name
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(twin)))


def test_the_digits_family_is_greyscale_on_disk_and_when_loaded(
    digits: dict[str, Any], tmp_path: Path
) -> None:
    paths = sorted(Path(digits["images_dir"]).rglob("*.png"))
    assert len(paths) == 13
    assert {Image.open(p).mode for p in paths} == {"L"}
    files = digits["files"]
    training = load_training_set(
        files["training"], digits["images_dir"], "ROI_VC = 1", 28, tmp_path
    )
    images = np.asarray(training.images)
    assert (images == images[..., :1]).all()
    assert images.max() > 150 and np.median(images) < 60  # light strokes on a dark ground
    digit_of = {
        id_to_name(float(i)): int(i) - prf_stimuli.DIGIT_SYNSET for i in training.stimulus_ids
    }
    assert set(digit_of.values()) == set(range(10))  # ten training images: one per digit


def test_mixed_family_is_in_colour(mixed: dict[str, Any]) -> None:
    pngs = sorted((Path(mixed["images_dir"]) / "training").iterdir())
    rgb = np.stack([np.asarray(Image.open(p)) for p in pngs]).astype(int)  # (M, S, S, 3)
    assert rgb.shape[-1] == 3 and np.abs(rgb[..., 0] - rgb[..., 1]).mean() > 10


def test_ridge_calibration_decodes_the_images_at_high_snr(tmp_path: Path) -> None:
    summary = prf.simulate_prf_subject(
        tmp_path / "s",
        snr=3.0,
        seed=0,
        family="mixed",
        n_train=120,
        train_presentations=1,
        n_test=10,
        test_presentations=2,
        image_size_px=32,
        n_voxels=300,
    )
    assert summary["ridge_pairwise_identification"] > 0.7


def test_bad_arguments_are_refused_with_the_reason(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        prf.simulate_prf_subject(busy, **TINY)
    with pytest.raises(ConfigError, match="snr"):
        prf.simulate_prf_subject(tmp_path / "x", snr=0.0, **TINY)
    with pytest.raises(ConfigError, match="family"):
        prf.simulate_prf_subject(tmp_path / "y", **{**TINY, "family": "faces"})
    assert not (tmp_path / "y").exists() and not list(tmp_path.glob(".y.partial*"))


def test_it_shares_no_code_with_the_project_simulator() -> None:
    """An independent check: from ``e2e_recon.sim`` it imports only itself and ``cohort``."""
    allowed = ("e2e_recon.sim.prf", "e2e_recon.sim.cohort")
    for path in SIM_PRF.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.startswith("e2e_recon.sim") and name not in ("e2e_recon.sim",):
                    assert name.startswith(allowed), f"{path.name} imports {name}"
