"""e2e-recon: end-to-end deep image reconstruction from brain activity.

A modern implementation of Shen, Dwivedi, Majima, Horikawa & Kamitani (2019),
"End-to-end deep image reconstruction from human brain activity",
Front. Comput. Neurosci. 13:21.
"""

from __future__ import annotations

__version__ = "0.1.0"
