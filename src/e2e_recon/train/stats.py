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
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch import nn

from e2e_recon.config import Config
from e2e_recon.errors import DataError
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


@dataclass
class GridPatterns:
    """Fixed fMRI patterns whose current reconstructions are drawn during training.

    Each entry of ``sets`` is ``(name, voxels (K, V) float32, stimuli (K, c, c, 3) float
    RGB 0-255)``: single-trial training patterns of the first K training images and,
    when a test file is configured, the trial-averaged, scaled patterns of its first
    K images.
    """

    sets: list[tuple[str, torch.Tensor, np.ndarray]]
    crop_px: int

    @classmethod
    def from_data(cls, cfg: Config, data: Any, count: int = 8) -> GridPatterns:
        """Pick the patterns from a ``TrainingSet`` and the first ``data.test_fmri`` file."""
        from e2e_recon.data.dataset import load_test_set

        crop = cfg.data.crop_px
        first_rows = [int(np.flatnonzero(data.image_index == i)[0]) for i in range(count)
                      if i < len(data.images) and np.any(data.image_index == i)]  # fmt: skip
        sets = [
            (
                "training",
                torch.from_numpy(np.asarray(data.voxels[first_rows], dtype=np.float32)),
                _stimuli_rgb(data.images[data.image_index[first_rows]], crop),
            )
        ]
        if cfg.data.test_fmri:
            try:
                test = load_test_set(
                    cfg.data.test_fmri[0], cfg.data.images_dir or None, cfg.data.roi, data.norm,
                    cfg.data.image_size_px, cfg.data.cache_dir or None,
                )  # fmt: skip
            except DataError as exc:  # the grid is a progress aid: never stop training for it
                get_logger().warning("progress grid without test patterns: %s", exc)
                return cls(sets=sets, crop_px=crop)
            k = min(count, len(test.voxels))
            scaled = test.voxels[:k] * np.sqrt(test.n_trials[:k])[:, None]  # test-time scaling
            stimuli = _stimuli_rgb(test.images[:k], crop) if test.images is not None else None
            if stimuli is not None:
                sets.append((test.set_name, torch.from_numpy(scaled.astype(np.float32)), stimuli))
        return cls(sets=sets, crop_px=crop)

    @torch.no_grad()
    def render(self, generator: nn.Module, device: torch.device) -> list[np.ndarray]:
        """Rows of RGB float images: stimuli, then reconstructions, for each set."""
        from e2e_recon.data.images import caffe_to_rgb_float
        from e2e_recon.nets.generator import center_crop

        rows = []
        for _, voxels, stimuli in self.sets:
            fake = center_crop(generator(voxels.to(device)), self.crop_px)  # (K, 3, c, c)
            rows += [stimuli, caffe_to_rgb_float(fake.float().cpu().numpy())]
        return rows


def _stimuli_rgb(images_bgr: np.ndarray, crop_px: int) -> np.ndarray:
    """Centre crops of cached BGR uint8 images as RGB float (K, c, c, 3)."""
    from e2e_recon.data.images import (
        bgr_uint8_tensor_to_caffe,
        caffe_to_rgb_float,
        center_crop_uint8,
    )

    crops = np.ascontiguousarray(center_crop_uint8(np.asarray(images_bgr), crop_px))
    return caffe_to_rgb_float(bgr_uint8_tensor_to_caffe(torch.from_numpy(crops)).numpy())


def save_grid(path: Path, rows: list[np.ndarray], gap_px: int = 2) -> Path:
    """Tile rows of RGB float images (0-255, clipped here) into one PNG, atomically."""
    from PIL import Image

    height, width = rows[0].shape[1:3]
    columns = max(len(r) for r in rows)
    canvas = np.full(
        (len(rows) * (height + gap_px), columns * (width + gap_px), 3), 255, dtype=np.uint8
    )
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            top, left = i * (height + gap_px), j * (width + gap_px)
            canvas[top : top + height, left : left + width] = np.clip(image, 0, 255).astype(
                np.uint8
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(canvas).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
