"""Ctrl-C and SIGTERM during training: finish the iteration, snapshot, return.

The loop records why it stopped (:data:`STOP_REASONS`); the command line turns a
stop on a signal into the shell's convention, 128 + the signal number (130 after
Ctrl-C, 143 after SIGTERM), so that ``train && reconstruct`` does not go on with a
half-trained generator.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from e2e_recon.runs import get_logger

#: Why a training run ended: all iterations done, ``train.max_minutes`` reached,
#: early stopping on the validation split, or SIGINT/SIGTERM.
STOP_REASONS = ("done", "time_limit", "early_stop", "signal")


class StopRequest(threading.Event):
    """An event that also remembers which signal set it (``signum``, 0 when none)."""

    def __init__(self) -> None:
        super().__init__()
        self.signum = 0


class StoppedBySignal(KeyboardInterrupt):
    """Raised after a signal-stopped run wrote its snapshot; carries the exit code."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(f"stopped by a signal (exit code {exit_code})")
        self.exit_code = exit_code


def signal_exit_code(summary: Mapping[str, Any]) -> int:
    """0, or 128 + the signal number for a run a signal stopped (130 SIGINT, 143 SIGTERM)."""
    if summary.get("stop_reason") != "signal":
        return 0
    return 128 + int(summary.get("stop_signal") or signal.SIGINT)


@contextlib.contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """SIGINT/SIGTERM set a flag that the loop reads at the end of each iteration."""
    event = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(signum: int, frame: object) -> None:
        if event.is_set():  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        event.signum = signum
        event.set()
        get_logger().warning("stop requested: finishing this iteration and writing a snapshot")

    for sig in previous:
        signal.signal(sig, request_stop)
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
