"""Numbered run directories and run logging.

A run lives in ``runs/NNNNN-<subject>-<name>/`` with ``config.yaml``,
``log.txt``, ``stats.jsonl``, ``checkpoints/``, ``recon/`` and ``report/``, and
the marker ``e2e-recon-run.json`` that says the project made the folder: only a
folder with it is ever cleared (see :mod:`e2e_recon.run_folder`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

from e2e_recon import __version__
from e2e_recon.config import Config, save_config
from e2e_recon.errors import CheckpointError
from e2e_recon.fileio import atomic_write_json

_RUN_NAME = re.compile(r"^(\d{5})-")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
LOGGER_NAME = "e2e_recon"
#: The marker file of a run folder, its ``format`` and version.
RUN_MARKER = "e2e-recon-run.json"
RUN_FORMAT = "e2e-recon-run"
RUN_FORMAT_VERSION = 1


def next_run_dir(runs_root: Path, subject: str, name: str) -> Path:
    """Create and return the next numbered run directory under ``runs_root``.

    Parameters
    ----------
    runs_root : Path
        Parent folder, created when missing.
    subject, name : str
        Parts of the directory name (unsafe characters become ``-``).

    Returns
    -------
    Path
        A new, empty directory ``runs_root/NNNNN-subject-name``.
    """
    runs_root.mkdir(parents=True, exist_ok=True)
    label = "-".join(_SAFE.sub("-", part).strip("-") or "x" for part in (subject, name))
    numbers = [int(m.group(1)) for p in runs_root.iterdir() if (m := _RUN_NAME.match(p.name))]
    number = max(numbers, default=-1) + 1
    while True:  # another process may take the same number: mkdir is the arbiter
        run_dir = runs_root / f"{number:05d}-{label}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            number += 1


def init_run_dir(run_dir: Path, cfg: Config) -> Path:
    """Lay out a run directory and write its resolved config before work starts.

    A new run (no ``config.yaml`` yet) is marked with :data:`RUN_MARKER` first. A run
    made by an older version, without the marker, is continued as it is: nothing says
    the folder held only the run, so it stays unmarked and is never cleared.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.yaml").exists() and not is_marked_run(run_dir):
        marker = {"format": RUN_FORMAT, "version": RUN_FORMAT_VERSION, "e2e_recon": __version__}
        atomic_write_json(run_dir / RUN_MARKER, marker)
    for sub in ("checkpoints", "recon", "report"):
        (run_dir / sub).mkdir(exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    attach_log_file(run_dir / "log.txt")
    return run_dir


def is_marked_run(folder: Path) -> bool:
    """True when ``folder`` holds the marker the project writes into every run folder."""
    try:
        content = json.loads((folder / RUN_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and content.get("format") == RUN_FORMAT


def require_run_dir(run_dir: Path) -> Path:
    """Check that ``run_dir`` is a run directory (has ``config.yaml``)."""
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(
            f"{run_dir} is not a run directory (no config.yaml); give a folder made by "
            "'e2e-recon train' or 'e2e-recon demo'"
        )
    return run_dir


def get_logger() -> logging.Logger:
    """The project's logger (messages go to the terminal and the run's log.txt)."""
    return logging.getLogger(LOGGER_NAME)


def warn(message: str) -> None:
    """A warning in ``log.txt`` and on the terminal (stderr), which may be all a user reads."""
    get_logger().warning(message)
    print(f"warning: {message}", file=sys.stderr, flush=True)


def attach_log_file(path: Path) -> None:
    """Write the project's log messages to ``path`` (appending).

    A process logs to one run at a time: the log file of an earlier run (the
    previous condition of an experiment, say) is detached first, so its
    ``log.txt`` does not collect the next run's messages.
    """
    logger = get_logger()
    logger.setLevel(logging.INFO)
    target = path.resolve()
    for handler in _file_handlers():
        if Path(handler.baseFilename) == target:
            return
        detach_log_file(Path(handler.baseFilename))
    handler = logging.FileHandler(target, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)


def detach_log_file(path: Path) -> None:
    """Stop writing log messages to ``path`` and close it."""
    logger, target = get_logger(), path.resolve()
    for handler in _file_handlers():
        if Path(handler.baseFilename) == target:
            logger.removeHandler(handler)
            handler.close()


def _file_handlers() -> list[logging.FileHandler]:
    return [h for h in get_logger().handlers if isinstance(h, logging.FileHandler)]
