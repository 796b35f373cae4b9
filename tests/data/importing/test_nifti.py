"""NIfTI betas + mask + ROI masks + a volume table imported as BData files and images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from e2e_recon.data.bdata import BData
from e2e_recon.data.dataset import load_test_set, load_training_set
from e2e_recon.data.importing.nifti import import_nifti, is_nifti_source
from e2e_recon.errors import DataError

nib = pytest.importorskip("nibabel")

GRID = (4, 5, 3)
AFFINE = np.array([[2.0, 0, 0, -10], [0, 2.0, 0, -20], [0, 0, 2.5, 5], [0, 0, 0, 1]])
STIMULI = ["cat.png", "dog.png", "cat.png", "dog.png", "owl.png", "owl.png"]
SPLIT = ["train", "train", "train", "train", "test", "test"]


def nifti_folder(root: Path, four_d: bool = True) -> tuple[Path, np.ndarray, np.ndarray]:
    """Betas, a mask, one ROI, a TSV table and stimulus images; returns (folder, betas, mask)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root.mkdir()
    betas = rng.normal(size=(*GRID, len(STIMULI))).astype(np.float32)
    mask = np.zeros(GRID, dtype=np.uint8)
    mask[1:3, 1:4, :2] = 1  # 12 voxels
    roi = np.zeros(GRID, dtype=np.uint8)
    roi[1, 1:4, :2] = 1  # 6 of them
    if four_d:
        nib.save(nib.Nifti1Image(betas, AFFINE), root / "betas.nii.gz")
    else:
        for i in range(len(STIMULI)):
            nib.save(nib.Nifti1Image(betas[..., i], AFFINE), root / f"beta_{i + 1}.nii")
    nib.save(nib.Nifti1Image(mask, AFFINE), root / "mask.nii.gz")
    nib.save(nib.Nifti1Image(roi, AFFINE), root / "roi_V1.nii.gz")
    rows = ["stimulus\tsplit\trun\tsession"] + [
        f"{s}\t{t}\t{i // 2 + 1}\t{1 if i < 4 else 2}"
        for i, (s, t) in enumerate(zip(STIMULI, SPLIT, strict=True))
    ]
    (root / "volumes.tsv").write_text("\n".join(rows) + "\n")
    (root / "stimuli").mkdir()
    for k, name in enumerate(sorted(set(STIMULI))):
        Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)).save(root / "stimuli" / name)
    return root, betas, mask.astype(bool)


@pytest.mark.parametrize("four_d", [True, False])
def test_nifti_folder_imports(tmp_path: Path, four_d: bool) -> None:
    folder, betas, mask = nifti_folder(tmp_path / "nii", four_d)
    assert is_nifti_source(folder)
    summary = import_nifti(folder, tmp_path / "out", set_name="animals")
    assert summary["n_training_samples"] == 4 and summary["n_training_images"] == 2
    assert summary["n_test_samples"] == 2 and summary["n_test_images"] == 1
    bd = BData(summary["training_file"])
    voxels = bd.get("VoxelData")
    np.testing.assert_allclose(voxels[0], betas[..., 0][mask], rtol=1e-6)
    # Coordinates from the affine, in the mask's voxel order, as the lab's voxel_x/y/z.
    ijk = np.argwhere(mask)
    xyz = ijk @ AFFINE[:3, :3].T + AFFINE[:3, 3]
    for axis, column in zip("xyz", xyz.T, strict=True):
        np.testing.assert_allclose(bd.metadata(f"voxel_{axis}")[bd.select_index("VoxelData")],
                                   column)  # fmt: skip
    assert bd.select("ROI_V1").shape == (4, 6)
    np.testing.assert_array_equal(bd.get("Run").ravel(), [1, 1, 2, 2])
    test_bd = BData(summary["test_file"])
    np.testing.assert_array_equal(test_bd.get("Session").ravel(), [2, 2])
    ts = load_training_set(summary["training_file"], summary["training_images_dir"], "ROI_V1", 8)
    assert ts.voxels.shape == (4, 6) and ts.images.shape == (2, 8, 8, 3)
    test = load_test_set(summary["test_file"], summary["test_images_dir"], "ROI_V1", ts.norm, 8)
    assert test.set_name == "animals" and test.n_trials.tolist() == [2]
    assert (tmp_path / "out" / "images" / "names.csv").read_text().count("owl") == 1


def test_nifti_mismatches_named(tmp_path: Path) -> None:
    folder, _, _ = nifti_folder(tmp_path / "nii")
    table = (folder / "volumes.tsv").read_text()
    (folder / "volumes.tsv").write_text("stimulus\tsplit\ncat.png\ttrain\n")
    with pytest.raises(DataError, match=r"hold 6 volumes but .*volumes.tsv has 1 rows"):
        import_nifti(folder, tmp_path / "out")
    (folder / "volumes.tsv").write_text(table)
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.uint8), AFFINE), folder / "roi_V2.nii.gz")
    with pytest.raises(DataError, match=r"roi_V2.nii.gz is on another grid"):
        import_nifti(folder, tmp_path / "out")
    (folder / "mask.nii.gz").unlink()
    with pytest.raises(DataError, match="--mask"):
        import_nifti(folder, tmp_path / "out")
    assert not (tmp_path / "out" / "fmri").exists()


def test_cli_imports_nifti_folder(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from e2e_recon.cli import app

    folder, _, _ = nifti_folder(tmp_path / "nii")
    result = CliRunner().invoke(app, ["import", str(folder), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "mask_from: mask.nii.gz" in result.output
    assert (tmp_path / "out" / "fmri" / "sub-01_perceptionNaturalImageTest_original_VC.h5").exists()
