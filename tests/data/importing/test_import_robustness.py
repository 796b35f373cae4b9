"""Damaged, declared-huge and unusable import sources: one line, exit 2, nothing left behind."""

from __future__ import annotations

import errno
import gzip
import io
import struct
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from test_nifti import AFFINE, nifti_folder
from typer.testing import CliRunner

from e2e_recon.cli import app
from e2e_recon.data.importing import source_checks
from e2e_recon.data.importing.importers import import_arrays, load_arrays
from e2e_recon.errors import DataError, OutputError

nib = pytest.importorskip("nibabel")
runner = CliRunner()


def _one_line(source: Path, out: Path, *parts: str) -> str:
    """Run ``import SOURCE --out OUT``: exit 2, one line holding ``parts``, no traceback."""
    result = runner.invoke(app, ["import", str(source), "--out", str(out)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for part in parts:
        assert part in lines[0], lines[0]
    assert not out.exists(), "a failed import must not leave the --out folder it created"
    return lines[0]


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    base = {"voxels": np.random.default_rng(0).normal(size=(6, 4)), "labels": np.arange(6) % 3,
            "images": np.zeros((3, 8, 8), np.uint8)}  # fmt: skip
    np.savez(path, **{**base, **arrays})
    return path


def _nifti_bytes(shape: tuple[int, ...], dtype: type = np.float32) -> bytes:
    """An uncompressed NIfTI-1 file of a small volume whose header then declares ``shape``."""
    img = nib.Nifti1Image(np.ones((2, 2, 2), dtype), AFFINE)
    raw = bytearray(img.to_bytes())
    header = img.header.copy()
    header.set_data_shape(shape)
    raw[:348] = header.binaryblock
    return bytes(raw)


# --------------------------------------------------------------------------------------------
# 7. Damaged files: one line each
# --------------------------------------------------------------------------------------------


def test_truncated_nii_gz_is_one_line_not_aborted(tmp_path: Path) -> None:
    folder, _, _ = nifti_folder(tmp_path / "nii")
    data = (folder / "betas.nii.gz").read_bytes()
    (folder / "betas.nii.gz").write_bytes(data[:-30])  # the gzip stream's end is missing
    line = _one_line(folder, tmp_path / "out", "betas.nii.gz", "truncated or damaged")
    assert "Aborted" not in line


def test_truncated_nii_and_header_declaring_more_than_the_file(tmp_path: Path) -> None:
    folder, betas, _ = nifti_folder(tmp_path / "nii")
    (folder / "betas.nii.gz").unlink()
    whole = nib.Nifti1Image(betas, AFFINE).to_bytes()
    (folder / "betas.nii").write_bytes(whole[:-100])
    _one_line(folder, tmp_path / "out", "betas.nii", "stores only", "truncated")
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(whole))
    header.set_data_shape((*betas.shape[:3], 30000))
    (folder / "betas.nii").write_bytes(header.binaryblock + whole[348:])
    _one_line(folder, tmp_path / "out", "declares shape (4, 5, 3, 30000)", "stores only")


def test_compressed_mask_declaring_gigabytes_is_refused_before_reading(tmp_path: Path) -> None:
    folder, _, _ = nifti_folder(tmp_path / "nii")
    # 32767 x 32767 x 100 uint8: 107 GB declared by a file of a few hundred bytes.
    huge = gzip.compress(_nifti_bytes((32767, 32767, 100), np.uint8))
    (folder / "mask.nii.gz").write_bytes(huge)
    tracemalloc.start()
    # The betas' grid is compared with the mask's from the headers, before any data is read.
    with pytest.raises(DataError, match=r"betas.nii.gz is on another grid .* \(32767, 32767, 100"):
        import_arrays_or_nifti(folder, tmp_path / "out")
    # With the betas and the mask declaring the same huge grid, their sizes are checked.
    betas = gzip.compress(_nifti_bytes((32767, 32767, 100, 6)))
    (folder / "betas.nii.gz").write_bytes(betas)
    (folder / "roi_V1.nii.gz").unlink()
    with pytest.raises(DataError, match=r"mask.nii.gz declares shape \(32767, 32767, 100\)"):
        import_arrays_or_nifti(folder, tmp_path / "out")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50e6


def import_arrays_or_nifti(source: Path, out: Path) -> None:
    from e2e_recon.data.importing.nifti import import_nifti

    import_nifti(source, out)


def test_table_not_utf8_is_one_line(tmp_path: Path) -> None:
    folder, _, _ = nifti_folder(tmp_path / "nii")
    table = folder / "volumes.tsv"
    table.write_bytes(table.read_bytes().replace(b"owl", b"\xe9t\xe9"))  # Latin-1 "été"
    _one_line(folder, tmp_path / "out", "volumes.tsv", "line 6 is not UTF-8", "save the table")


def test_text_voxels_and_zero_images_are_one_line(tmp_path: Path) -> None:
    text = np.array([[f"v{i}{j}" for j in range(4)] for i in range(6)])
    _one_line(_npz(tmp_path / "text.npz", voxels=text), tmp_path / "out", "not numbers")
    empty = _npz(tmp_path / "empty.npz", images=np.zeros((0, 8, 8), np.uint8))
    _one_line(empty, tmp_path / "out", "shape (0, 8, 8): it holds no images")


# --------------------------------------------------------------------------------------------
# 8. Declared sizes checked against the file and memory before reading
# --------------------------------------------------------------------------------------------


def _npz_declaring(path: Path, shape: tuple[int, ...], compressed: bool) -> Path:
    """A .npz whose voxels member declares ``shape`` but holds 80 bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    mode = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", mode) as archive:
        archive.writestr("voxels.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + bytes(80))
    return path


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_member_declaring_a_huge_shape_is_refused_before_reading(
    tmp_path: Path, compressed: bool
) -> None:
    src = _npz_declaring(tmp_path / "huge.npz", (10**6, 10**6), compressed)
    tracemalloc.start()
    with pytest.raises(DataError, match=r"huge.npz: voxels declares shape \(1000000, 1000000\)"):
        load_arrays(src)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50e6


def test_mat_v73_dataset_declaring_a_huge_shape_is_refused(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "huge.mat", "w") as h5:  # chunks never written: 0 bytes stored
        h5.create_dataset("voxels", (10**6, 10**6), "f8", chunks=(100, 100), compression="gzip")
    with pytest.raises(DataError, match=r"huge.mat: /voxels declares shape"):
        load_arrays(tmp_path / "huge.mat")


def test_mat_v5_variable_declaring_a_huge_shape_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "huge.mat"
    scipy.io.savemat(src, {"voxels": np.zeros((2, 2))}, do_compression=False)
    raw = bytearray(src.read_bytes())
    raw[160:168] = struct.pack("<ii", 10**6, 10**6)  # the dimensions of the first variable
    src.write_bytes(bytes(raw))
    tracemalloc.start()
    with pytest.raises(DataError, match=r"huge.mat: voxels declares shape \(1000000, 1000000\)"):
        load_arrays(src)
    assert tracemalloc.get_traced_memory()[1] < 50e6
    tracemalloc.stop()


def test_mat_v5_text_and_small_files_are_not_refused(tmp_path: Path) -> None:
    names = np.array([f"n{i:08d}_{i}" for i in range(2000)])  # stored as 2 bytes a character
    for compress in (False, True):
        scipy.io.savemat(
            tmp_path / "t.mat", {"names": names, "x": np.ones(3)}, do_compression=compress
        )
        assert load_arrays(tmp_path / "t.mat")["names"].shape == (2000,)


def _little_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_checks, "available_memory_bytes", lambda: 10_000_000)


@pytest.mark.parametrize(
    "save",
    [
        lambda p, a: np.savez_compressed(p.with_suffix(".npz"), **a),
        lambda p, a: scipy.io.savemat(p.with_suffix(".mat"), a, do_compression=True),
        lambda p, a: _save_h5(p.with_suffix(".mat"), a),
    ],
    ids=["npz", "mat-v5", "mat-v7.3"],
)
def test_deflated_zeros_larger_than_memory_are_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    save: Callable[[Path, dict[str, np.ndarray]], None],
) -> None:
    save(tmp_path / "zeros", {"voxels": np.zeros((1000, 1000)), "labels": np.arange(1000)})
    (src,) = tmp_path.glob("zeros.*")
    assert src.stat().st_size < 200_000  # 8 MB of zeros, deflated
    _little_memory(monkeypatch)
    with pytest.raises(DataError, match=r"voxels declares shape \(1000, 1000\).* GB is available"):
        load_arrays(src)


def _save_h5(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with h5py.File(path, "w") as h5:
        for name, value in arrays.items():
            h5.create_dataset(name, data=value, chunks=True, compression="gzip")


def test_betas_larger_than_memory_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _, _ = nifti_folder(tmp_path / "nii")
    monkeypatch.setattr(source_checks, "available_memory_bytes", lambda: 1000)
    with pytest.raises(DataError, match=r"mask.nii.gz declares shape .* GB is available"):
        import_arrays_or_nifti(folder, tmp_path / "out")


# --------------------------------------------------------------------------------------------
# 9. Unusable data is refused, not imported with exit 0
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"voxels": np.full((6, 4), np.inf)}, "Every training voxel value is NaN or inf"),
        ({"voxels": np.zeros((6, 0))}, "shape (6, 0): no voxel columns"),
        ({"voxels": np.ones((6, 4)) * (1 + 2j)}, "complex numbers"),
        ({"images": np.full((3, 8, 8), np.nan)}, "images array holds NaN or inf"),
        ({"images": np.full((3, 8, 8), np.inf)}, "images array holds NaN or inf"),
    ],
    ids=["all-inf", "no-voxels", "complex", "nan-images", "inf-images"],
)
def test_unusable_arrays_are_refused(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    _one_line(_npz(tmp_path / "bad.npz", **arrays), tmp_path / "out", message)


def test_all_nan_betas_are_refused(tmp_path: Path) -> None:
    folder, betas, _ = nifti_folder(tmp_path / "nii")
    nib.save(nib.Nifti1Image(np.full_like(betas, np.nan), AFFINE), folder / "betas.nii.gz")
    _one_line(folder, tmp_path / "out", "Every beta voxel value is NaN or inf")


# --------------------------------------------------------------------------------------------
# 10. Disk full while importing
# --------------------------------------------------------------------------------------------


def test_disk_full_while_importing_is_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    calls = {"n": 0}
    real_save = Image.Image.save

    def fills_up(self: Image.Image, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second image: the first files are already written
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Image.Image, "save", fills_up)
    out = tmp_path / "new" / "out"
    _one_line(_npz(tmp_path / "ok.npz"), out, str(out), "No space left on device", "free there")
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "mine"  # a folder of the user's is kept, and holds nothing new
    kept.mkdir()
    calls["n"] = 0
    with pytest.raises(OutputError, match="No space left"):
        import_arrays(_npz(tmp_path / "ok.npz"), kept)
    assert kept.is_dir() and list(kept.iterdir()) == []


# --------------------------------------------------------------------------------------------
# 11. Clearer messages
# --------------------------------------------------------------------------------------------


def test_failed_import_removes_the_out_folder_it_created(tmp_path: Path) -> None:
    folder, _, _ = nifti_folder(tmp_path / "nii")
    (folder / "stimuli" / "owl.png").unlink()  # found missing only while writing
    _one_line(folder, tmp_path / "a" / "b" / "out", "owl")
    assert not (tmp_path / "a").exists()


def test_no_samples_empty_label_and_nan_affine_are_named(tmp_path: Path) -> None:
    none = _npz(tmp_path / "none.npz", voxels=np.zeros((0, 4)), labels=np.arange(0))
    _one_line(none, tmp_path / "out", "holds no samples", "(0, 4)")
    labels = np.array(["0", "1", "", "2", "0", "1"])
    _one_line(_npz(tmp_path / "l.npz", labels=labels), tmp_path / "out", "sample 2", "is empty")
    folder, _, _ = nifti_folder(tmp_path / "nii")
    roi = nib.load(folder / "roi_V1.nii.gz")
    bad = AFFINE.copy()
    bad[0, 0] = np.nan
    broken = nib.Nifti1Image(np.asarray(roi.dataobj), None)
    broken.header.set_sform(bad, code=1)  # a NaN sform; nibabel's own affine= cannot hold it
    nib.save(broken, folder / "roi_V1.nii.gz")
    _one_line(folder, tmp_path / "out", "roi_V1.nii.gz", "affine", "not finite")
    table = folder / "volumes.tsv"
    nib.save(roi, folder / "roi_V1.nii.gz")
    lines = table.read_text().splitlines()
    lines[3] = "\t" + lines[3].split("\t", 1)[1]
    table.write_text("\n".join(lines) + "\n")
    _one_line(folder, tmp_path / "out", "volumes.tsv: line 4 has an empty stimulus")
