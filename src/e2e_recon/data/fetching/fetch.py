"""Verified, resumable HTTP downloads with the standard library.

One file is fetched by :func:`fetch_file`: it streams to ``NAME.part``, resumes an
interrupted transfer with an HTTP ``Range`` request, checks size and checksum and
only then renames the file into place. A small sidecar ``.NAME.verified.json``
records what was verified, so that a complete file is never fetched (or even
hashed) again. :func:`fetch_many` runs several at once (at most 3) under one
progress display.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from e2e_recon.errors import DownloadError

CHUNK_BYTES = 1 << 20
MAX_PARALLEL = 3
USER_AGENT = "e2e-recon (https://doi.org/10.3389/fncom.2019.00021)"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch.

    Attributes
    ----------
    url : str
        Where to get it.
    dest : Path
        Final path.
    size : int or None
        Expected size in bytes, when known.
    algorithm : str or None
        ``"md5"``, ``"sha1"``, ``"sha256"`` (full hex digest) or ``"sha256-prefix"``
        (the digest must start with ``digest``, as in torchvision file names).
    digest : str or None
        Expected hex digest (or prefix).
    manual_hint : str
        Where a user can get the file by hand (a web page), for error messages.
    """

    url: str
    dest: Path
    size: int | None = None
    algorithm: str | None = None
    digest: str | None = None
    manual_hint: str = ""

    @property
    def part(self) -> Path:
        """The partial download path, ``NAME.part``."""
        return self.dest.with_name(self.dest.name + ".part")

    @property
    def sidecar(self) -> Path:
        """The verification record, ``.NAME.verified.json``."""
        return self.dest.with_name(f".{self.dest.name}.verified.json")


@dataclass(frozen=True)
class FetchOptions:
    """How to fetch: redo, retries, timeouts, display."""

    force: bool = False
    attempts: int = 3
    retry_wait_s: float = 2.0
    timeout_s: float = 60.0


class _Interrupted(Exception):
    """The transfer stopped early; the part file holds what arrived (resumable)."""


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file (``algorithm`` as for :class:`RemoteFile`, prefix forms full)."""
    hasher = hashlib.new(algorithm.removesuffix("-prefix"))
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _digest_matches(remote: RemoteFile, got: str) -> bool:
    expected = (remote.digest or "").lower()
    if remote.algorithm is not None and remote.algorithm.endswith("-prefix"):
        return got.startswith(expected)
    return got == expected


def _manual_line(remote: RemoteFile) -> str:
    source = remote.manual_hint or remote.url
    return f"to place it by hand, download {source} to {remote.dest} and run the command again"


def verify(remote: RemoteFile, path: Path) -> None:
    """Check size and checksum of ``path`` against ``remote``.

    Raises
    ------
    DownloadError
        Naming the file, what was expected and what was found.
    """
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        raise DownloadError(
            f"size mismatch for {remote.dest.name}: expected {remote.size} bytes, got {size}"
        )
    if remote.algorithm and remote.digest:
        got = file_digest(path, remote.algorithm)
        if not _digest_matches(remote, got):
            raise DownloadError(
                f"checksum mismatch for {remote.dest.name}: expected {remote.algorithm} "
                f"{remote.digest}, got {got}"
            )


def _write_sidecar(remote: RemoteFile) -> None:
    stat = remote.dest.stat()
    record = {
        "url": remote.url,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "algorithm": remote.algorithm,
        "digest": remote.digest,
    }
    tmp = remote.sidecar.with_name(remote.sidecar.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, remote.sidecar)


def is_verified(remote: RemoteFile) -> bool:
    """True when ``remote.dest`` exists and its sidecar matches it and ``remote``."""
    try:
        record = json.loads(remote.sidecar.read_text())
        stat = remote.dest.stat()
    except (OSError, ValueError):
        return False
    same_file = record.get("size") == stat.st_size and record.get("mtime_ns") == stat.st_mtime_ns
    same_size = remote.size is None or remote.size == stat.st_size
    same_sum = remote.digest is None or (
        record.get("algorithm") == remote.algorithm and record.get("digest") == remote.digest
    )
    return bool(same_file and same_size and same_sum)


def _existing_is_good(remote: RemoteFile) -> bool:
    """Accept a file already in place: by sidecar, or by verifying it (a file put by hand)."""
    if not remote.dest.is_file():
        return False
    if is_verified(remote):
        return True
    try:
        verify(remote, remote.dest)
    except DownloadError:
        return False  # fetched again below; replaced only once the new copy verifies
    _write_sidecar(remote)
    return True


def _open(remote: RemoteFile, offset: int, timeout_s: float) -> Any:
    request = urllib.request.Request(remote.url, headers={"User-Agent": USER_AGENT})
    if offset > 0:
        request.add_header("Range", f"bytes={offset}-")
    return urllib.request.urlopen(request, timeout=timeout_s)


def _start_offset(response: Any, offset: int) -> int:
    """Where the body of ``response`` starts in the file (0 when the server ignored Range)."""
    if response.status != 206:
        return 0  # 200: no Range support (or a fresh request): restart from zero
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    if match is None or int(match.group(1)) != offset:
        return 0
    return offset


def _transfer(remote: RemoteFile, options: FetchOptions, progress: Any, task: Any) -> None:
    """One HTTP request: append (206) or rewrite (200) the part file."""
    part = remote.part
    offset = part.stat().st_size if part.exists() else 0
    if remote.size is not None and offset >= remote.size:
        if offset == remote.size:
            return
        part.unlink()
        offset = 0
    try:
        response = _open(remote, offset, options.timeout_s)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset > 0:
            part.unlink()  # the part file does not fit the remote file any more
            raise _Interrupted("server refused the resume range; restarting") from error
        raise
    with response:
        start = _start_offset(response, offset)
        length = response.headers.get("Content-Length")
        expected_body = int(length) if length is not None else None
        if progress is not None:
            total = remote.size or (start + expected_body if expected_body is not None else None)
            progress.update(task, total=total, completed=start)
        received = 0
        with open(part, "ab" if start > 0 else "wb") as out:
            while True:
                block = response.read(CHUNK_BYTES)
                if not block:
                    break
                out.write(block)
                received += len(block)
                if progress is not None:
                    progress.advance(task, len(block))
    if expected_body is not None and received < expected_body:
        raise _Interrupted(f"connection closed after {received} of {expected_body} bytes")


def _describe(error: BaseException) -> str:
    if isinstance(error, _Interrupted):  # an internal class: its message says it all
        return f"transfer interrupted ({error})"
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"network error ({error.reason})"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


_RETRYABLE = (
    _Interrupted,
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    socket.timeout,
    TimeoutError,
)


def _download(remote: RemoteFile, options: FetchOptions, progress: Any, task: Any) -> None:
    """Bring ``remote.part`` to the full file, retrying and resuming on interruptions."""
    last: BaseException | None = None
    for attempt in range(options.attempts):
        if attempt > 0 and options.retry_wait_s > 0:
            time.sleep(options.retry_wait_s * attempt)
        try:
            _transfer(remote, options, progress, task)
            return
        except urllib.error.HTTPError as error:
            last = error
            if error.code < 500:  # 404, 403, ...: retrying will not help
                break
        except _RETRYABLE as error:
            last = error
    assert last is not None
    kept = " (the partial file is kept; the next run resumes)" if remote.part.exists() else ""
    raise DownloadError(
        f"could not download {remote.url}: {_describe(last)}{kept}; {_manual_line(remote)}"
    ) from last


def fetch_file(
    remote: RemoteFile, options: FetchOptions | None = None, progress: Progress | None = None
) -> Path:
    """Fetch one file into place, verified; do nothing when it is already there.

    Parameters
    ----------
    remote : RemoteFile
        URL, destination and expected size / checksum.
    options : FetchOptions, optional
        ``force`` deletes a previous copy and partial file first.
    progress : rich.progress.Progress, optional
        Display to add a task to; None shows nothing.

    Returns
    -------
    Path
        ``remote.dest``.

    Raises
    ------
    DownloadError
        Network failure (URL, reason, how to place the file by hand), or a size or
        checksum mismatch (the partial file is deleted).
    """
    options = options or FetchOptions()
    remote.dest.parent.mkdir(parents=True, exist_ok=True)
    if options.force:
        for stale in (remote.part, remote.sidecar):
            stale.unlink(missing_ok=True)
    elif _existing_is_good(remote):
        return remote.dest
    task = None
    if progress is not None:
        task = progress.add_task(remote.dest.name, total=remote.size)
    resumed = remote.part.exists()
    _download(remote, options, progress, task)
    problem = _verify_part(remote)
    if problem is not None and resumed:
        # The old part may come from an earlier upload of the file: one clean restart.
        _download(remote, options, progress, task)
        problem = _verify_part(remote)
    if problem is not None:
        raise problem
    os.replace(remote.part, remote.dest)
    _write_sidecar(remote)
    return remote.dest


def _verify_part(remote: RemoteFile) -> DownloadError | None:
    """Verify the part file; on failure delete it and return the error to raise."""
    try:
        verify(remote, remote.part)
    except DownloadError as error:
        remote.part.unlink(missing_ok=True)
        return DownloadError(f"{error}; the partial file was deleted, run the command again")
    return None


def make_progress() -> Progress:
    """A rich progress display with name, bar, bytes, rate and time left."""
    return Progress(
        TextColumn("{task.description}", justify="left"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )


def fetch_many(
    remotes: Sequence[RemoteFile],
    options: FetchOptions | None = None,
    show_progress: bool = True,
) -> list[Path]:
    """Fetch several files, at most :data:`MAX_PARALLEL` at a time.

    Every file is attempted; when some fail, a :class:`DownloadError` carrying the
    first failure (and the count of the others) is raised after the rest finish.
    """
    if not remotes:
        return []
    progress = make_progress() if show_progress else None
    results: list[Path] = []
    failures: list[DownloadError] = []
    workers = min(MAX_PARALLEL, len(remotes))
    display = progress if progress is not None else contextlib.nullcontext()
    with display, ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fetch_file, remote, options, progress) for remote in remotes]
        for future in futures:
            try:
                results.append(future.result())
            except DownloadError as error:
                failures.append(error)
    if failures:
        more = f" (and {len(failures) - 1} more failed)" if len(failures) > 1 else ""
        raise DownloadError(f"{failures[0]}{more}") from failures[0]
    return results
