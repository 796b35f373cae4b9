"""Atomic file writing: outputs appear whole or not at all.

Everything the project writes goes to a temporary name in the destination's
folder first and is renamed over the destination only once complete, so an
interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    The temporary name keeps the suffix of ``path`` (writers such as Pillow and
    ``scipy.io.savemat`` choose the format from it) and starts with a dot. On an
    exception the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:8]}.tmp{target.suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically; returns ``path``."""
    return atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def new_file_mode() -> int:
    """The permission bits a newly created file gets under this process's umask.

    ``tempfile.mkstemp`` creates files with mode 600 whatever the umask; files
    written that way and renamed into place get this mode instead, as if they had
    been created with ``open``.
    """
    return 0o666 & ~_umask()


def _umask() -> int:
    # Reading /proc does not change the umask; os.umask must set it to read it,
    # which briefly affects other threads, so it is only the fallback.
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
