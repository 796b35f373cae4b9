"""What the evaluation suites share: the scored groups and where their networks come from."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from e2e_recon.data.home import WEIGHTS_DIR, data_home
from e2e_recon.evalnets.registry import (
    DOWNLOAD_COMMAND,
    EVAL_NETS,
    find_weights,
    load_eval_net,
    unverified_weights,
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
    """Evaluation networks from the data home (verified files only), or given modules.

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
    #: Network key -> what was used (title and file).
    used: dict[str, str] = field(default_factory=dict)

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
                given.to(self.device).eval()
            yield given
            return
        path = find_weights(key, self.home)
        if path is None:
            self.missing[key] = self._missing_text(key)
            yield None
            return
        self.used[key] = f"{spec.title} ({path.name})"
        yield load_eval_net(key, path).to(self.device)

    def _missing_text(self, key: str) -> str:
        spec = EVAL_NETS[key]
        folder = data_home(self.home) / WEIGHTS_DIR
        unverified = unverified_weights(key, self.home)
        if unverified:
            return (
                f"{spec.title}: {unverified[0]} has not been verified; run `{DOWNLOAD_COMMAND}` "
                "(it checks a file put there by hand and fetches only what is missing)"
            )
        return f"{spec.title}: no {spec.file_name} in {folder}; run `{DOWNLOAD_COMMAND}`"

    def notices(self) -> list[str]:
        """One line per missing network, saying which command fetches it."""
        return [f"missing weights, columns left empty: {text}" for text in self.missing.values()]


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
