"""Training checkpoints: plain dicts of tensors, written atomically, resumed exactly.

A checkpoint holds the generator (and its moving average when ``train.ema_decay``
is on), the discriminator, both optimisers and their learning-rate schedules (each
with its network's update counter), the iteration, the balance state, the normalisation
statistics and every random-number state (torch CPU and CUDA, numpy, Python and
the explicit ``torch.Generator`` objects of the loop). It loads with
``torch.load(weights_only=True)``. Files are written under a temporary name in the
same folder, flushed to disk and then ``os.replace``d, so a process killed at any
moment leaves the previous snapshot intact. Each holds a SHA-256 checksum of its
content, verified whenever it is loaded: a corrupt snapshot is skipped on resume with
a warning naming it, and the previous good one is used.

Layout in a run directory::

    checkpoints/snapshot_iter0010000.pt   one per snapshot
    checkpoints/latest.pt                 the newest snapshot (a hard link when possible)
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from e2e_recon.errors import CheckpointError
from e2e_recon.fileio import output_error
from e2e_recon.load_errors import describe_load_error
from e2e_recon.nets.shared import stacked_to_file
from e2e_recon.runs import get_logger, warn
from e2e_recon.train.integrity import seal_status, sealed

CHECKPOINT_FORMAT = "e2e-recon/train-checkpoint"
GENERATOR_FORMAT = "e2e-recon/generator"
FORMAT_VERSION = 1
LATEST_NAME = "latest.pt"
_SNAPSHOT = re.compile(r"^snapshot_iter(\d+)\.pt$")
_TEMPORARY = re.compile(r"^\..+\.pt\.\d+\.tmp$")  # atomic_torch_save's and latest.pt's


def _file_id(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def _is_write_failure(exc: RuntimeError) -> bool:
    text = str(exc)
    return "inline_container" in text or "write" in text.lower()


def snapshot_name(iteration: int) -> str:
    """File name of the snapshot after ``iteration`` completed iterations."""
    return f"snapshot_iter{iteration:07d}.pt"


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace``.

    A project payload (a dict whose ``format`` starts with ``e2e-recon/``) is saved
    with its checksum (see :mod:`e2e_recon.train.integrity`).

    Raises
    ------
    OutputError
        The folder cannot be written (disk full, read-only, ...): one line naming it,
        the error and the free space. The previous file at ``path`` is left intact.
    """
    if isinstance(obj, Mapping) and str(obj.get("format", "")).startswith("e2e-recon/"):
        obj = sealed(obj)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch reports a failed write as RuntimeError
        if isinstance(exc, RuntimeError) and not _is_write_failure(exc):
            raise
        raise output_error(path.parent, exc) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


#: What to do about a damaged snapshot, when the caller has not done it already.
EARLIER_SNAPSHOT = "; use an earlier snapshot from the same folder"


def load_checkpoint(
    path: Path, expected_format: str = CHECKPOINT_FORMAT, advice: str = EARLIER_SNAPSHOT
) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check its format tag.

    ``advice`` ends the message of a damaged file (``""`` where the caller falls back
    to an earlier snapshot by itself).

    Raises
    ------
    CheckpointError
        Missing, unreadable or of another format.
    """
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: many exception types
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({describe_load_error(exc)}){advice}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != expected_format:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"checkpoint {path} has format {found!r}, expected {expected_format!r}"
        )
    if ckpt.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has version {ckpt.get('version')!r}; this e2e-recon reads "
            f"version {FORMAT_VERSION}"
        )
    if seal_status(ckpt) is False:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: its content does not match its SHA-256 checksum{advice}"
        )
    return ckpt


def write_snapshot(checkpoint_dir: Path, ckpt: Mapping[str, Any]) -> Path:
    """Write ``snapshot_iterNNNNNNN.pt`` and point ``latest.pt`` at it, both atomically.

    Returns
    -------
    Path
        The snapshot file.
    """
    path = checkpoint_dir / snapshot_name(int(ckpt["iteration"]))
    atomic_torch_save(dict(ckpt), path)
    latest = checkpoint_dir / LATEST_NAME
    tmp = checkpoint_dir / f".{LATEST_NAME}.{os.getpid()}.tmp"
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.link(path, tmp)  # no second copy of a large file
        except OSError:
            shutil.copyfile(path, tmp)
        os.replace(tmp, latest)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise output_error(checkpoint_dir, exc) from None
    return path


def remove_orphaned_temporaries(*folders: Path) -> list[Path]:
    """Delete ``.NAME.pt.PID.tmp`` files that a killed process left behind.

    Called when a run starts or resumes, before it writes anything: a run folder is
    written by one training process at a time, so every such file is an orphan.
    """
    removed = []
    for folder in folders:
        for path in folder.glob(".*.pt.*.tmp") if folder.is_dir() else ():
            if _TEMPORARY.match(path.name):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    if removed:
        get_logger().info(
            "removed %d temporary file(s) left by an interrupted process: %s",
            len(removed), ", ".join(p.name for p in removed),
        )  # fmt: skip
    return removed


def find_resume_checkpoint(run_dir: Path) -> Path:
    """The newest loadable checkpoint of a run: ``latest.pt``, else the newest snapshot.

    Raises
    ------
    CheckpointError
        When the run has no loadable checkpoint.
    """
    folder = run_dir / "checkpoints"
    snapshots = sorted(
        (int(m.group(1)), p)
        for p in (folder.iterdir() if folder.is_dir() else ())
        if (m := _SNAPSHOT.match(p.name))
    )
    candidates = [folder / LATEST_NAME] + [p for _, p in reversed(snapshots)]
    bad: set[tuple[int, int]] = set()  # latest.pt is usually a hard link to a snapshot
    for path in candidates:
        if not path.is_file() or _file_id(path) in bad:
            continue
        try:
            load_checkpoint(path, advice="")
            return path
        except CheckpointError as exc:
            bad.add(_file_id(path))
            warn(f"{exc}; skipped, the previous snapshot is tried instead")
    raise CheckpointError(
        f"{folder} holds no loadable checkpoint; start a new run instead of --resume"
    )


def capture_rng(generators: Mapping[str, torch.Generator]) -> dict[str, Any]:
    """Every random state the loop depends on, as plain values and tensors."""
    # The legacy global numpy state, in case a library draws from it.
    np_state: tuple[Any, ...] = tuple(np.random.get_state())  # noqa: NPY002
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    return state


def restore_rng(state: Mapping[str, Any], generators: Mapping[str, torch.Generator]) -> None:
    """Inverse of :func:`capture_rng` (CUDA states only when CUDA is in use here)."""
    torch.set_rng_state(state["torch_cpu"])
    if state["torch_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["torch_cuda"]))
    np_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    for name, g in generators.items():
        g.set_state(state["generators"][name])


def export_generator(checkpoint_path: Path, out_path: Path) -> Path:
    """Write the generator of a training checkpoint in the project ``.pt`` format.

    The file is ``{"format": "e2e-recon/generator", "version": 1, "arch": {...},
    "state_dict": {...}, "meta": {...}, "norm": {"mean", "std", "roi"}}``, which
    ``e2e_recon.nets.load_generator`` reads and reconstruction uses (``norm``
    z-scores test voxels with the training statistics).

    Parameters
    ----------
    checkpoint_path : Path
        A training snapshot (``checkpoints/snapshot_iter*.pt`` or ``latest.pt``).
    out_path : Path
        Destination, written atomically.

    Returns
    -------
    Path
        ``out_path``.
    """
    ckpt = load_checkpoint(Path(checkpoint_path))
    atomic_torch_save(generator_file_payload(ckpt), Path(out_path))
    return Path(out_path)


def generator_file_payload(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """The project ``.pt`` generator dict built from a training checkpoint dict.

    A checkpoint of a run with ``train.ema_decay`` gives its averaged weights
    (``meta.weights`` says which).
    """
    averaged = "generator_ema" in ckpt
    weights = ckpt["generator_ema"]["weights"] if averaged else ckpt["generator"]
    arch, state = dict(ckpt["generator_arch"]), dict(weights)
    if "subject_voxels" in arch:  # a shared run: each subject's input layer under its name
        arch, state = stacked_to_file(arch, state)
    return {
        "format": GENERATOR_FORMAT,
        "version": FORMAT_VERSION,
        "arch": arch,
        "state_dict": state,
        "meta": {
            "iteration": int(ckpt["iteration"]),
            "source": "e2e-recon train",
            "weights": "moving average" if averaged else "trained",
            "config": ckpt.get("config", {}),
        },
        "norm": dict(ckpt["norm"]),
    }


def module_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's state dict on the CPU, detached (safe to save while training goes on)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
