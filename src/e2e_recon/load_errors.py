"""Messages for ``.pt`` / ``.pth`` files that ``torch.load(weights_only=True)`` refuses.

The project loads every PyTorch file with ``weights_only=True``, so a file that
holds arbitrary Python objects is refused instead of run. PyTorch's own message
for that case advises retrying with ``weights_only=False``, which would execute
code from the file; such advice must not reach a user who may be loading a file
from an untrusted source, so it is replaced by a plain statement of what the
file holds.
"""

from __future__ import annotations

import re

__all__ = ["describe_load_error"]

_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


def describe_load_error(error: BaseException) -> str:
    """One short line saying why ``torch.load(weights_only=True)`` failed.

    Parameters
    ----------
    error : BaseException
        What ``torch.load`` raised.

    Returns
    -------
    str
        For a file with Python objects, what was refused and why, without
        PyTorch's advice to load it unsafely; otherwise the exception type and the
        first line of its message.
    """
    text = str(error)
    if "weights_only" in text or "Weights only load failed" in text:
        found = _GLOBAL.search(text)
        named = f" ({found.group(1)})" if found else ""
        return (
            f"the file holds Python objects other than tensors{named}; they are not loaded, "
            "because unpickling them could run code from the file"
        )
    lines = text.strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
