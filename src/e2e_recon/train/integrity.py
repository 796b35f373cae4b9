"""A SHA-256 checksum inside each snapshot and generator file, verified on load.

A zip container catches a truncated file, but not bytes flipped inside a tensor: such
a file loads and resumes silently with wrong weights. So each file the trainer writes
carries ``"sha256"``: a digest of its content (keys, plain values, and every tensor's
dtype, shape and bytes) computed before saving and recomputed after loading. The
digest is over the content rather than the file's bytes, so it needs no second file
beside the snapshot (``latest.pt`` stays a hard link) and no second serialisation.

Files written before checksums existed have no ``"sha256"`` and load as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch

CHECKSUM_KEY = "sha256"


def content_digest(obj: Any) -> str:
    """SHA-256 (hex) of a nested structure of dicts, lists, tensors and plain values.

    Dict keys are visited in sorted order, so the digest does not depend on insertion
    order; the top-level ``"sha256"`` key, if any, is left out.
    """
    h = hashlib.sha256()
    _feed(h, obj, top=True)
    return h.hexdigest()


def sealed(payload: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` with its :func:`content_digest` under ``"sha256"``."""
    out = {k: v for k, v in payload.items() if k != CHECKSUM_KEY}
    out[CHECKSUM_KEY] = content_digest(out)
    return out


def seal_status(payload: Any) -> bool | None:
    """True when the stored checksum matches, False when not, None when there is none."""
    if not isinstance(payload, Mapping) or CHECKSUM_KEY not in payload:
        return None
    return payload[CHECKSUM_KEY] == content_digest(payload)


def _feed(h: Any, obj: Any, top: bool = False) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        # Reinterpreted as bytes, every dtype (bf16, bool, complex) hashes alike.
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, Mapping):
        keys = sorted((k for k in obj if not (top and k == CHECKSUM_KEY)), key=repr)
        h.update(f"D{len(keys)}".encode())
        for key in keys:
            h.update(repr(key).encode())
            _feed(h, obj[key])
    elif isinstance(obj, list | tuple):
        h.update(f"L{len(obj)}".encode())
        for item in obj:
            _feed(h, item)
    else:  # int, float (repr is exact), str, bool, None, bytes
        h.update(f"V{type(obj).__name__}:{obj!r}".encode())
