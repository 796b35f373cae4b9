"""Ctrl-C and SIGTERM during training: finish the iteration, snapshot, return."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from e2e_recon.runs import get_logger


@contextlib.contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set a flag that the loop reads at the end of each iteration."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(signum: int, frame: object) -> None:
        if event.is_set():  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        event.set()
        get_logger().warning("stop requested: finishing this iteration and writing a snapshot")

    for sig in previous:
        signal.signal(sig, request_stop)
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
