"""Open a BData file in a child process first, with a time limit.

libhdf5 is C code: on a damaged file it can hang (ignoring Ctrl-C) or crash the
process (a segmentation fault, exit 139, no message). Python cannot catch either.
So before this process opens a file, a child process (``python -m
e2e_recon.data.h5probe FILE``) opens it and checks its structure and metadata: every
link and dataset (nothing may live outside the file), every node's type and declared
size, the metadata keys, values and descriptions, the header and value maps. Only the
data array itself is not read, which keeps the check to a process start and a
second read of the metadata (measured in docs/data.md).

- The child finishes: its verdict stands. A problem it found (a
  :class:`~e2e_recon.errors.DataError`) is raised here with the same message.
- It runs past the time limit, or dies of a signal: one line, "libhdf5 could not read
  FILE: damaged? ...", as a DataError (the command line exits 2).
- Ctrl-C here kills the child and stops the wait at once.

The limit is :data:`DEFAULT_TIMEOUT_S` seconds, or the environment variable
``E2E_RECON_H5_PROBE_TIMEOUT`` (seconds; 0 turns the check off). A verdict is kept
per (path, size, modification time) for the life of the process, so a file is
checked once however often it is read.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import signal
import stat as stat_module
import subprocess
import sys
from pathlib import Path

import h5py

from e2e_recon.data.bdata_checks import BDataContent, read_bdata
from e2e_recon.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "TIMEOUT_ENV",
    "check_file",
    "probe_file",
    "probe_timeout",
    "read_bdata_file",
]

TIMEOUT_ENV = "E2E_RECON_H5_PROBE_TIMEOUT"
#: Structure and metadata of the lab's largest files read in well under a second from a
#: local disk; the margin is for network and spinning disks under load.
DEFAULT_TIMEOUT_S = 120.0
#: The child's exit status for "the file has a problem; the message is on stdout".
_REFUSED = 3
#: Verdicts by (resolved path, size, mtime_ns): None for a readable file, else the message.
_VERDICTS: dict[tuple[str, int, int], str | None] = {}
#: Appended where the file is not there at all.
_MISSING_HINT = (
    " Check the path; `e2e-recon download fmri --subject sub-01` fetches the lab's files."
)


def read_bdata_file(path: Path, read_data: bool = True) -> BDataContent:
    """Open ``path`` with h5py (in this process) and read it as a BData file.

    Raises
    ------
    DataError
        One line naming the file for any file h5py or the checks refuse.
    """
    try:
        with h5py.File(path, "r") as h5:
            return read_bdata(h5, path, read_data=read_data)
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
        # h5py reports damaged structures (bad object headers, link loops) this way.
        raise DataError(
            f"Cannot read {path} as a BData HDF5 file ({err}). The file may be truncated "
            "(download it again) or not HDF5 at all (BData files are .h5 or MATLAB v7.3 .mat)."
        ) from err


def probe_timeout() -> float:
    """The time limit of the child's check, in seconds (0: no check)."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise ConfigError(
            f"{TIMEOUT_ENV}={raw!r}; give the seconds a file's check may take, e.g. 600 "
            "(0 turns the check off)"
        )
    return value


def probe_command(path: Path) -> list[str]:
    """The child's command line (a seam for tests, which put a misbehaving child here)."""
    return [sys.executable, "-m", "e2e_recon.data.h5probe", str(path)]


def probe_file(path: str | os.PathLike[str]) -> None:
    """Check ``path`` in a child process with a time limit; raise what it found.

    Raises
    ------
    DataError
        The file has a problem (the check's message), or libhdf5 hung or crashed on it.
    ConfigError
        ``E2E_RECON_H5_PROBE_TIMEOUT`` is not a number of seconds.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as err:
        hint = _MISSING_HINT if err.errno == errno.ENOENT else ""
        raise DataError(f"BData file {path} cannot be opened ({err.strerror}).{hint}") from None
    if not stat_module.S_ISREG(stat.st_mode):  # a FIFO or device would block the reader
        raise DataError(f"BData file {path} is not a regular file; give the .h5 file itself.")
    limit = probe_timeout()
    if limit == 0:
        return
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _VERDICTS:
        _VERDICTS[key] = _run_child(path, limit)
    if _VERDICTS[key] is not None:
        raise DataError(_VERDICTS[key])


def check_file(path: str | os.PathLike[str]) -> None:
    """Check structure and metadata of ``path`` now, without keeping what is read.

    In the child (:func:`probe_file`), or in this process when the child's check is
    off; for commands that check every input before they write anything.
    """
    probe_file(path)
    if probe_timeout() == 0:
        read_bdata_file(Path(path), read_data=False)


def _run_child(path: Path, limit: float) -> str | None:
    """The child's verdict: None (readable) or a one-line message."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])  # the folder holding e2e_recon
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    command = probe_command(path)
    # No ``with``: leaving it waits for the child without a limit, and a child stuck
    # in the kernel (a dead network disk) would then hold this process too.
    child = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        out, err = child.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill(child)
        return (
            f"libhdf5 could not read {path}: damaged? Reading its structure did not finish "
            f"within {limit:g} s, so it was stopped. If the disk is just slow, allow more "
            f"time with {TIMEOUT_ENV}=SECONDS."
        )
    except BaseException:  # Ctrl-C, SIGTERM: stop the child too, at once
        _kill(child)
        raise
    return _verdict(path, child.returncode, out, err)


def _kill(child: subprocess.Popen[bytes]) -> None:
    child.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):  # stuck in the kernel (dead disk)
        child.communicate(timeout=5)


def _verdict(path: Path, code: int, out: bytes, err: bytes) -> str | None:
    if code == 0:
        return None
    if code == _REFUSED:
        return out.decode("utf-8", errors="replace").strip() or f"{path} is not readable."
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return (
            f"libhdf5 could not read {path}: damaged? Reading its structure crashed the "
            f"process ({name}). Download or write the file again."
        )
    last = (err.decode("utf-8", errors="replace").strip().splitlines() or [""])[-1]
    return (
        f"libhdf5 could not read {path}: damaged? Reading its structure stopped with exit "
        f"status {code}{f' ({last})' if last else ''}."
    )


def main(argv: list[str]) -> int:
    """The child: read ``argv[0]`` but its data array; exit 0, or 3 with the message."""
    try:
        read_bdata_file(Path(argv[0]), read_data=False)
    except DataError as err:
        print(str(err).replace("\n", " "), flush=True)
        return _REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
