"""Messages for ``.pt`` / ``.pth`` files that ``torch.load(weights_only=True)`` refuses.

The project loads every PyTorch file with ``weights_only=True``, so a file that
holds arbitrary Python objects is refused instead of run. PyTorch's own message
for that case advises retrying with ``weights_only=False``, which would execute
code from the file; such advice must not reach a user who may be loading a file
from an untrusted source, so it is replaced by a plain statement of what the
file holds. Bytes the unpickler cannot parse at all (random bytes over a
damaged file's head) are reported as a damaged file, not as one that could run
code.
"""

from __future__ import annotations

import re

__all__ = ["describe_load_error"]

#: How the weights-only unpickler names a class or function it refused to rebuild:
#: "Unsupported global: GLOBAL mod.Name", "unsupported GLOBAL mod.name whose module ...".
_GLOBAL = re.compile(r"GLOBAL (\S+)")
#: The unpickler's own reason, after torch's paragraph of advice.
_REASON = re.compile(r"WeightsUnpickler error:\s*([^\n]+)")


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
        PyTorch's advice to load it unsafely; for bytes the unpickler cannot parse
        (a damaged file), that it is damaged; otherwise the exception type and the
        first line of its message.
    """
    text = str(error)
    if "weights_only" in text or "Weights only load failed" in text:
        found = _GLOBAL.search(text)
        if found is not None or "reduce" in text:
            return (
                f"the file holds Python objects other than tensors ({found.group(1)})"
                if found is not None
                else "the file holds Python objects other than tensors"
            ) + "; they are not loaded, because unpickling them could run code from the file"
        # Bytes that are no pickle at all (a damaged head, another format): say so,
        # rather than suggest the file holds something dangerous.
        reason = _REASON.search(text)
        detail = f" ({reason.group(1).strip()})" if reason else ""
        return f"the file is damaged or not a PyTorch file: its content is unreadable{detail}"
    lines = text.strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
