"""BData files that point outside themselves, and libhdf5 hanging or crashing on a file.

The child-process check is off in most tests (``tests/conftest.py``); the tests here
that need it turn it on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from e2e_recon.data import h5probe
from e2e_recon.data.bdata import BData
from e2e_recon.errors import DataError

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _valid(path: Path, n_cols: int = 4) -> Path:
    bdata = BData()
    bdata.add(np.arange(2.0 * n_cols).reshape(2, n_cols), "VoxelData")
    bdata.save(path)
    return path


def _with_dataset_replaced(path: Path, make: object) -> Path:
    """A valid file whose ``/dataset`` is replaced by what ``make(h5)`` creates."""
    _valid(path)
    with h5py.File(path, "a") as h5:
        del h5["dataset"]
        make(h5)  # type: ignore[operator]
    return path


@pytest.fixture
def probe_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The child-process check on, with a fresh verdict cache."""
    monkeypatch.setenv(h5probe.TIMEOUT_ENV, "60")
    monkeypatch.setattr(h5probe, "_VERDICTS", {})


def _fake_child(monkeypatch: pytest.MonkeyPatch, code: str) -> list[Path]:
    """Replace the child by a Python snippet; returns the list of probed paths."""
    probed: list[Path] = []

    def command(path: Path) -> list[str]:
        probed.append(path)
        return [sys.executable, "-c", textwrap.dedent(code)]

    monkeypatch.setattr(h5probe, "probe_command", command)
    return probed


# -- storage outside the file -------------------------------------------------------------


def test_external_link_is_refused_naming_file_and_object(tmp_path: Path) -> None:
    _valid(tmp_path / "other.h5")
    path = _with_dataset_replaced(
        tmp_path / "linked.h5",
        lambda h5: h5.__setitem__("dataset", h5py.ExternalLink("other.h5", "/dataset")),
    )
    with pytest.raises(DataError, match=r"linked\.h5: /dataset is an external link") as info:
        BData(path)
    assert "other.h5" in str(info.value) and "\n" not in str(info.value)


def test_soft_link_through_an_external_link_is_refused(tmp_path: Path) -> None:
    _valid(tmp_path / "other.h5")

    def make(h5: h5py.File) -> None:
        h5["elsewhere"] = h5py.ExternalLink("other.h5", "/dataset")
        h5["dataset"] = h5py.SoftLink("/elsewhere")

    with pytest.raises(DataError, match="/elsewhere is an external link"):
        BData(_with_dataset_replaced(tmp_path / "soft.h5", make))


def test_soft_link_inside_the_file_still_reads(tmp_path: Path) -> None:
    def make(h5: h5py.File) -> None:
        h5.create_dataset("stored", data=np.ones((2, 4)))
        h5["dataset"] = h5py.SoftLink("/stored")

    assert BData(_with_dataset_replaced(tmp_path / "soft.h5", make)).dataset.shape == (2, 4)


def test_external_storage_is_refused(tmp_path: Path) -> None:
    raw = tmp_path / "values.bin"
    np.ones((2, 4)).tofile(raw)
    path = _with_dataset_replaced(
        tmp_path / "ext.h5",
        lambda h5: h5.create_dataset(
            "dataset", shape=(2, 4), dtype="f8", external=[(str(raw), 0, h5py.h5f.UNLIMITED)]
        ),
    )
    with pytest.raises(DataError, match=r"ext\.h5: /dataset keeps its values in external files"):
        BData(path)


def test_virtual_dataset_is_refused(tmp_path: Path) -> None:
    source = _valid(tmp_path / "source.h5")

    def make(h5: h5py.File) -> None:
        layout = h5py.VirtualLayout(shape=(2, 4), dtype="f8")
        layout[:] = h5py.VirtualSource(str(source), "dataset", shape=(2, 4))
        h5.create_virtual_dataset("dataset", layout)

    with pytest.raises(DataError, match=r"/dataset is a virtual dataset"):
        BData(_with_dataset_replaced(tmp_path / "virtual.h5", make))


def _load_in_subprocess(path: Path, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    code = f"from e2e_recon.data.bdata import BData; BData({str(path)!r})"
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop(h5probe.TIMEOUT_ENV, None)  # the check as a user has it
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout_s
    )


def test_external_link_to_a_fifo_is_refused_instead_of_hanging(tmp_path: Path) -> None:
    """Before: opening ``/dataset`` blocked for ever on the FIFO (this test timed out)."""
    os.mkfifo(tmp_path / "pipe.h5")
    path = _with_dataset_replaced(
        tmp_path / "fifo.h5",
        lambda h5: h5.__setitem__("dataset", h5py.ExternalLink("pipe.h5", "/x")),
    )
    proc = _load_in_subprocess(path)
    assert proc.returncode == 1
    assert "DataError" in proc.stderr and "/dataset is an external link" in proc.stderr


def test_a_fifo_given_as_the_file_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.h5")
    with pytest.raises(DataError, match="not a regular file"):
        h5probe.probe_file(tmp_path / "pipe.h5")


# -- checksums and duplicate keys ----------------------------------------------------------


def test_saved_arrays_carry_a_checksum_and_damage_is_one_clear_line(tmp_path: Path) -> None:
    """Before: no checksum, so the flipped bytes read back as other voxel values."""
    path = _valid(tmp_path / "sub.h5", n_cols=64)
    with h5py.File(path, "r") as h5:
        assert h5["dataset"].fletcher32 and h5["metadata/value"].fletcher32
        chunk = h5["dataset"].id.get_chunk_info(0)
    blob = bytearray(path.read_bytes())
    middle = chunk.byte_offset + chunk.size // 2
    blob[middle] ^= 0x10  # (Fletcher-32 cannot see 0x0000 <-> 0xFFFF: not that flip)
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"sub\.h5: /dataset \(the data array\) fails its checksum"):
        BData(path)


def test_files_without_checksums_still_read(tmp_path: Path) -> None:
    from test_bdata_malformed import write_valid

    with h5py.File(tmp_path / "lab.h5", "w") as h5:
        write_valid(h5)
    assert BData(tmp_path / "lab.h5").dataset.shape == (2, 4)


def test_duplicate_metadata_keys_are_refused_naming_both(tmp_path: Path) -> None:
    """Before: the second ``k1`` row was ignored silently."""
    from test_bdata_malformed import write_valid

    with h5py.File(tmp_path / "dup.h5", "w") as h5:
        write_valid(h5)
        del h5["metadata/key"]
        h5["metadata"].create_dataset(
            "key", data=[b"k0", b"k1", b"k1"], dtype=h5py.special_dtype(vlen=bytes)
        )
    with pytest.raises(
        DataError, match=r"dup\.h5: metadata key 'k1' is listed twice \(entries 2 and 3"
    ):
        BData(tmp_path / "dup.h5")


# -- the child-process check ---------------------------------------------------------------


def test_a_clean_file_is_checked_once_per_size_and_mtime(
    tmp_path: Path, probe_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _valid(tmp_path / "ok.h5")
    real = h5probe.probe_command
    probed: list[Path] = []
    monkeypatch.setattr(h5probe, "probe_command", lambda p: probed.append(p) or real(p))
    BData(path)
    BData(path)
    assert len(probed) == 1  # the verdict is kept
    _valid(path, n_cols=5)  # rewritten: another size, so checked again
    assert BData(path).dataset.shape == (2, 5)
    assert len(probed) == 2


def test_the_child_reports_a_malformed_file_with_the_readers_message(
    tmp_path: Path, probe_on: None
) -> None:
    path = tmp_path / "not.h5"
    path.write_bytes(b"not hdf5 at all" * 10)
    with pytest.raises(DataError, match=r"Cannot read .*not\.h5 as a BData HDF5 file"):
        h5probe.probe_file(path)


def test_a_hang_becomes_one_line_after_the_time_limit(
    tmp_path: Path, probe_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(h5probe.TIMEOUT_ENV, "0.5")
    _fake_child(monkeypatch, "import time; time.sleep(60)")
    path = _valid(tmp_path / "hangs.h5")
    start = time.monotonic()
    with pytest.raises(DataError) as info:
        BData(path)
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert message.startswith(f"libhdf5 could not read {path}: damaged?")
    assert "0.5 s" in message and h5probe.TIMEOUT_ENV in message and "\n" not in message


def test_a_crash_becomes_one_line(
    tmp_path: Path, probe_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_child(monkeypatch, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    path = _valid(tmp_path / "crashes.h5")
    with pytest.raises(
        DataError, match=r"libhdf5 could not read .*crashes\.h5: damaged\? .*SIGSEGV"
    ):
        BData(path)
    with pytest.raises(DataError, match="SIGSEGV"):  # the verdict is kept
        h5probe.probe_file(path)


def test_the_time_limit_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from e2e_recon.errors import ConfigError

    monkeypatch.setenv(h5probe.TIMEOUT_ENV, "soon")
    with pytest.raises(ConfigError, match=h5probe.TIMEOUT_ENV):
        h5probe.probe_timeout()
    monkeypatch.delenv(h5probe.TIMEOUT_ENV)
    assert h5probe.probe_timeout() == h5probe.DEFAULT_TIMEOUT_S


def test_ctrl_c_stops_the_wait_and_the_child(tmp_path: Path) -> None:
    path = _valid(tmp_path / "slow.h5")
    pid_file = tmp_path / "child.pid"
    # The parent starts with Python's own Ctrl-C handler, as from a terminal: a suite started
    # in the background (a non-interactive shell's `&`) hands it SIGINT ignored.
    script = f"""
        import signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from e2e_recon.data import h5probe
        child = "import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
        child += "time.sleep(60)"
        h5probe.probe_command = lambda path: [sys.executable, "-c", child]
        h5probe.probe_file({str(path)!r})
    """
    env = {**os.environ, "PYTHONPATH": SRC, h5probe.TIMEOUT_ENV: "60"}
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)], env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and parent.poll() is None
        time.sleep(0.05)
    child_pid = int(pid_file.read_text())
    parent.send_signal(signal.SIGINT)  # the parent alone: the child must be stopped by it
    _, err = parent.communicate(timeout=30)
    assert "KeyboardInterrupt" in err
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)


def test_train_leaves_no_run_folder_when_libhdf5_crashes(
    tmp_path: Path, probe_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the run folder was made first, and a crash left it behind to block a rerun."""
    from typer.testing import CliRunner

    from e2e_recon.cli import app

    _fake_child(monkeypatch, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    fmri = _valid(tmp_path / "sub-01_train.h5")
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        app,
        ["train", "--config", "demo", "--train-fmri", str(fmri), "--images", str(tmp_path),
         "--runs-dir", str(runs), "--set", "train.device=cpu"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "libhdf5 could not read" in result.output and "SIGSEGV" in result.output
    assert not runs.exists()


def test_train_checks_its_files_before_making_any_folder(tmp_path: Path) -> None:
    """Before: ``runs/`` and a run folder were made, then the folder removed on the error."""
    from typer.testing import CliRunner

    from e2e_recon.cli import app

    fmri = tmp_path / "sub-01_train.h5"
    fmri.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))  # an HDF5 signature, then nothing
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        app,
        ["train", "--config", "demo", "--train-fmri", str(fmri), "--images", str(tmp_path),
         "--runs-dir", str(runs), "--set", "train.device=cpu"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "sub-01_train.h5" in result.output
    assert not runs.exists()


def test_resume_reports_a_crashing_file_and_leaves_the_folder_as_it_was(
    tmp_path: Path, probe_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: ``--resume`` laid out the folder and then crashed again on the same file."""
    from typer.testing import CliRunner

    from e2e_recon.cli import app
    from e2e_recon.config import load_config, save_config

    fmri = _valid(tmp_path / "sub-01_train.h5")
    run = tmp_path / "run"
    run.mkdir()
    save_config(load_config("demo", [f"data.train_fmri='{fmri}'"]), run / "config.yaml")
    _fake_child(monkeypatch, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    result = CliRunner().invoke(app, ["train", "--resume", str(run)])
    assert result.exit_code == 2, result.output
    assert "libhdf5 could not read" in result.output
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]


def test_simulated_subjects_carry_checksums(tiny_subject: dict) -> None:
    for path in tiny_subject["files"].values():
        with h5py.File(path, "r") as h5:
            assert h5["dataset"].fletcher32 and h5["metadata/value"].fletcher32, path
