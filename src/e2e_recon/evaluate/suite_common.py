"""What the evaluation suites share: the scored groups and where their networks come from."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from e2e_recon.data.home import WEIGHTS_DIR, data_home
from e2e_recon.errors import ModelFormatError
from e2e_recon.evalnets.registry import (
    DOWNLOAD_COMMAND,
    EVAL_NETS,
    check_weights,
    find_weights,
    load_eval_net,
)


@dataclass
class SuiteGroup:
    """The reconstructions of one (set, method) and their stimuli.

    Attributes
    ----------
    set_name, method : str
    names : tuple of str
        Stimulus names, in the order of the arrays.
    recons, stimuli : ndarray, shape (N, S, S, 3)
        RGB 0-255 float64; ``stimuli[i]`` is what ``recons[i]`` reconstructs.
    """

    set_name: str
    method: str
    names: tuple[str, ...]
    recons: np.ndarray
    stimuli: np.ndarray


def by_set_indices(groups: list[SuiteGroup]) -> dict[str, list[int]]:
    """Indices of the groups of each set, in order (they share the set's stimuli)."""
    out: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        out.setdefault(group.set_name, []).append(index)
    return out


@dataclass
class NetSource:
    """Evaluation networks from the data home, or given modules.

    Each file is hashed when it is used: :attr:`used` names it as the official
    release only when its SHA-256 matched the published one, else "unverified"
    with its SHA-256; :attr:`weights` holds the same for ``metrics.json``.

    Parameters
    ----------
    home : path, optional
        Data home (``E2E_RECON_HOME`` or the user cache folder by default).
    device : torch.device
    given : mapping, optional
        Network key -> module. When given, only these are used and the data home
        is not read (tests pass random-weight instances; keys absent are missing).
    """

    home: str | os.PathLike[str] | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    given: Mapping[str, nn.Module] | None = None
    #: Network key -> why it is missing (filled as networks are asked for).
    missing: dict[str, str] = field(default_factory=dict)
    #: Network key -> what was used (title and file, or "unverified: file, SHA-256").
    used: dict[str, str] = field(default_factory=dict)
    #: Network key -> file, sha256, published checksum, status (official/unverified/given).
    weights: dict[str, dict[str, object]] = field(default_factory=dict)

    @contextmanager
    def open(self, key: str) -> Iterator[nn.Module | None]:
        """The network, loaded on entry and dropped on exit (one large network at a
        time in memory); None when it is missing (recorded in :attr:`missing`)."""
        spec = EVAL_NETS[key]
        if self.given is not None:
            given = self.given.get(key)
            if given is None:
                self.missing[key] = f"{spec.title}: not given"
            else:
                label = getattr(given, "weights_label", "given module")
                self.used[key] = f"{spec.title} ({label})"
                self.weights[key] = {"file": None, "sha256": None, "status": "given"}
                given.to(self.device).eval()
            yield given
            return
        path = find_weights(key, self.home)
        if path is None:
            self.missing[key] = self._missing_text(key)
            yield None
            return
        check = check_weights(key, path)
        try:
            net = load_eval_net(key, path, allow_code=check.official)
        except ModelFormatError as error:
            if check.official:
                raise
            # An unverified file that cannot be read (or a TorchScript archive that
            # would run code) leaves the network missing rather than stopping the run.
            self.missing[key] = f"{check.label(spec.title)}: {error}"
            yield None
            return
        self.used[key] = check.label(spec.title)
        self.weights[key] = check.as_dict()
        yield net.to(self.device)

    def _missing_text(self, key: str) -> str:
        spec = EVAL_NETS[key]
        folder = data_home(self.home) / WEIGHTS_DIR
        return f"{spec.title}: no {spec.file_name} in {folder}; run `{DOWNLOAD_COMMAND}`"

    def notices(self) -> list[str]:
        """One line per missing network (which command fetches it) and per unverified file."""
        lines = [f"missing weights, columns left empty: {text}" for text in self.missing.values()]
        return lines + [
            f"weights not the official release: {self.used[key]}"
            for key, record in self.weights.items()
            if record["status"] == "unverified"
        ]


def suite_home_hint(home: str | os.PathLike[str] | None) -> Path:
    """The folder the weights are looked for in."""
    return data_home(home) / WEIGHTS_DIR


def mean_or_none(values: np.ndarray) -> float | None:
    """Mean of the finite values, rounded for JSON; None when there is none."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    return None if x.size == 0 else round(float(x.mean()), 6)


def score_text(value: float | None, percent: bool) -> str:
    """A suite score as the published tables print it: "-" when missing, identification
    in percent to one decimal, other scores to three decimals."""
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def unverified_lines(table: Mapping[str, Any]) -> list[str]:
    """One line per network whose weights are not the official release (with SHA-256)."""
    weights = table.get("weights") or {}
    networks = table.get("networks") or {}
    return [
        f"Weights {networks.get(key, key)}"
        for key, record in weights.items()
        if isinstance(record, Mapping) and record.get("status") == "unverified"
    ]
