"""Safe, atomic unpacking of a released-model archive (``trainedmodel_sub-0N.zip``).

Members are checked before anything is written: no absolute paths, no ``..``, no
links, a bounded total size. The folder the archive wraps its files in (if any)
is dropped, so the files land directly in ``HOME/models/sub-0N/``. Unpacking goes
to a temporary sibling folder that replaces the destination only when complete,
with a ``.complete.json`` marker naming the archive it came from.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from e2e_recon.errors import DownloadError

MARKER = ".complete.json"
REQUIRED_FILE = "generator.caffemodel"
MAX_UNPACKED_BYTES = 20 * 1024**3
_JUNK = ("__MACOSX", ".DS_Store")


def _member_parts(info: zipfile.ZipInfo, archive: Path) -> tuple[str, ...] | None:
    """Path parts of a member, None for junk; DownloadError for an unsafe member."""
    name = info.filename.replace("\\", "/")
    parts = tuple(part for part in PurePosixPath(name).parts if part not in ("", "."))
    unsafe = (
        name.startswith("/")
        or ".." in parts
        or (parts and ":" in parts[0])
        or stat.S_ISLNK(info.external_attr >> 16)
    )
    if unsafe:
        raise DownloadError(
            f"unsafe member {info.filename!r} in {archive} (absolute path, '..' or link); "
            "nothing was unpacked"
        )
    if not parts or any(part in _JUNK or part.startswith("._") for part in parts):
        return None
    return parts


def _safe_members(
    archive_file: zipfile.ZipFile, archive: Path
) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """Members to extract with their paths relative to the common wrapping folder."""
    members = []
    for info in archive_file.infolist():
        parts = _member_parts(info, archive)
        if parts is not None and not info.is_dir():
            members.append((info, parts))
    if not members:
        raise DownloadError(f"{archive} holds no files")
    if sum(info.file_size for info, _ in members) > MAX_UNPACKED_BYTES:
        raise DownloadError(f"{archive} unpacks to more than {MAX_UNPACKED_BYTES} bytes; refused")
    # Drop leading folders shared by every member ("sub-01/generator.caffemodel").
    while all(len(parts) > 1 for _, parts in members) and len({p[0] for _, p in members}) == 1:
        members = [(info, parts[1:]) for info, parts in members]
    return members


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move ``tmp`` to ``out_dir``, replacing an old folder only after the move is ready."""
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def unpack_model_archive(archive: Path, out_dir: Path, md5: str | None = None) -> Path:
    """Unpack a released-model zip into ``out_dir`` (replaced atomically).

    Parameters
    ----------
    archive : Path
        The verified ``trainedmodel_sub-0N.zip``.
    out_dir : Path
        ``HOME/models/sub-0N``.
    md5 : str, optional
        The archive's MD5, recorded in the marker so a later run knows it is done.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    DownloadError
        A corrupt archive, an unsafe member, or no ``generator.caffemodel`` inside.
    """
    tmp = out_dir.with_name(f".{out_dir.name}.unpacking-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as archive_file:
            members = _safe_members(archive_file, archive)
            names = ["/".join(parts) for _, parts in members]
            if REQUIRED_FILE not in names:
                raise DownloadError(
                    f"{archive} has no {REQUIRED_FILE} (it holds {', '.join(names[:6])}); "
                    "delete it and run `e2e-recon download models --force`"
                )
            for info, parts in members:
                target = tmp.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive_file.open(info) as source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
        record = {"archive": archive.name, "md5": md5, "files": names}
        (tmp / MARKER).write_text(json.dumps(record, indent=1))
        _replace_dir(tmp, out_dir)
    except zipfile.BadZipFile as error:
        raise DownloadError(
            f"{archive} is not a valid zip archive ({error}); delete it and run "
            "`e2e-recon download models --force`"
        ) from error
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def is_unpacked(out_dir: Path, archive_name: str, md5: str | None) -> bool:
    """True when ``out_dir`` was unpacked from ``archive_name`` (with that MD5, when known)."""
    try:
        record = json.loads((out_dir / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if record.get("archive") != archive_name or not (out_dir / REQUIRED_FILE).is_file():
        return False
    return md5 is None or record.get("md5") in (None, md5)
