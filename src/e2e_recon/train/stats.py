"""Recording training statistics: stats.jsonl, optional TensorBoard, progress display.

Every logged row goes to ``stats.jsonl`` (one JSON object per line, appended, so a
resumed run continues the same file). When the ``tensorboard`` package is installed
the same scalars go to ``RUN/tensorboard/``. On a terminal a rich progress bar
shows iterations per second and the current losses; otherwise (a log file, a batch
job) a plain log line is written per logged row.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from e2e_recon.runs import get_logger

_SHOWN_ON_BAR = ("loss_g", "loss_d", "image", "feature", "adversarial", "ratio")


def _tensorboard_writer(log_dir: Path) -> Any | None:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is an optional extra
        return None
    return SummaryWriter(log_dir=str(log_dir))


class Recorder:
    """Writes logged values to ``stats.jsonl``, TensorBoard and the terminal.

    Parameters
    ----------
    run_dir : Path
        Run directory; ``stats.jsonl`` is appended there.
    total_iters : int
        Iteration count at which training ends (for the progress bar).
    start_iter : int
        Iterations already done (non-zero when resuming).
    enabled : bool
        False on every distributed rank but 0: nothing is written or shown.
    progress : bool or None
        Rich progress bar; None chooses it when stderr is a terminal.
    tensorboard : bool or None
        TensorBoard scalars; None uses them when the package is installed.
    """

    def __init__(
        self,
        run_dir: Path,
        total_iters: int,
        start_iter: int = 0,
        enabled: bool = True,
        progress: bool | None = None,
        tensorboard: bool | None = None,
    ) -> None:
        self.enabled = enabled
        self.total_iters = total_iters
        self._last_time = time.perf_counter()
        self._last_iter = start_iter
        self._stats_file = None
        self._tb: Any | None = None
        self._progress: Any | None = None
        self._task: Any | None = None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        self._stats_file = open(run_dir / "stats.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        if tensorboard is not False:
            self._tb = _tensorboard_writer(run_dir / "tensorboard")
        if progress is None:
            progress = sys.stderr.isatty()
        if progress:
            self._start_progress(start_iter)

    def _start_progress(self, start_iter: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[speed]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            "train", total=self.total_iters, completed=start_iter, speed="", losses=""
        )

    def log(self, iteration: int, values: Mapping[str, float | int | bool | str]) -> None:
        """Record one row of values at ``iteration`` (completed iterations).

        Adds ``it_per_s`` (since the previous row) and ``time`` (Unix seconds).
        """
        if not self.enabled:
            return
        now = time.perf_counter()
        done = iteration - self._last_iter
        speed = done / (now - self._last_time) if done > 0 and now > self._last_time else 0.0
        self._last_time, self._last_iter = now, iteration
        row: dict[str, Any] = {"iteration": iteration, **values, "it_per_s": speed}
        row["time"] = time.time()
        assert self._stats_file is not None
        self._stats_file.write(json.dumps(_jsonable(row)) + "\n")
        self._stats_file.flush()
        if self._tb is not None:
            for key, value in row.items():
                if isinstance(value, int | float) and key not in ("iteration", "time"):
                    self._tb.add_scalar(f"train/{key}", float(value), iteration)
        shown = "  ".join(
            f"{k} {_short(row[k])}" for k in _SHOWN_ON_BAR if isinstance(row.get(k), int | float)
        )
        if self._progress is not None:
            self._progress.update(
                self._task, completed=iteration, speed=f"{speed:.2f} it/s", losses=shown
            )
        else:
            get_logger().info(
                "iter %d/%d  %.2f it/s  %s", iteration, self.total_iters, speed, shown
            )

    def advance(self, iteration: int) -> None:
        """Move the progress bar without logging a row."""
        if self._progress is not None:
            self._progress.update(self._task, completed=iteration)

    def message(self, text: str) -> None:
        """A log message that does not break the progress bar."""
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.console.log(text)
        get_logger().info(text)

    def close(self) -> None:
        """Flush and close files and stop the progress bar."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._stats_file is not None:
            self._stats_file.close()
            self._stats_file = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _short(value: float | int) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    """Replace non-finite floats with strings so that every line is strict JSON."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, float) and not math.isfinite(value):
            out[key] = str(value)
        else:
            out[key] = value
    return out


def read_stats(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``stats.jsonl`` file (a torn last line, from a crash, is skipped)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def trim_stats(path: Path, keep_up_to: int) -> None:
    """Drop rows logged after iteration ``keep_up_to`` (rows a resumed run will redo)."""
    if not path.is_file():
        return
    kept = [r for r in read_stats(path) if int(r.get("iteration", 0)) <= keep_up_to]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    tmp.replace(path)
