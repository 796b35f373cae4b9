"""Puts this folder on ``sys.path`` so that the tests in its subfolders (``fetching/``,
``importing/``) import the shared ``subject_factory`` as the tests here do."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
