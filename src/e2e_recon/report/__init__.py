"""The run report: a self-contained HTML page and the README grid picture.

:func:`write_report` writes ``RUN_DIR/report/index.html`` (what ``e2e-recon report``
calls); :func:`save_grid_png` writes one test set's image grid as a PNG.
"""

from __future__ import annotations

from e2e_recon.report.report import render_report, save_grid_png, write_report

__all__ = ["render_report", "save_grid_png", "write_report"]
