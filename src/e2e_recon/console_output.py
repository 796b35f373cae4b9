"""Printing tables so that they arrive whole, on a terminal or in a log file.

rich lays a table out to the console's width, and a console that is not a
terminal (output redirected to a log file or a pipe) is 80 columns wide unless
``COLUMNS`` says otherwise: wide tables were wrapped and cut there. Off a
terminal, tables are printed at their natural width instead.
"""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

__all__ = ["print_table"]

#: Widest layout considered when measuring a table's natural width.
_MAX_MEASURED_WIDTH = 10_000


def print_table(console: Console, table: Table) -> None:
    """Print ``table``: fitted to a terminal, at its natural width anywhere else.

    Parameters
    ----------
    console : rich.console.Console
    table : rich.table.Table
    """
    if console.is_terminal:
        console.print(table)
        return
    options = console.options.update_width(_MAX_MEASURED_WIDTH)
    natural = Measurement.get(console, options, table).maximum
    if natural <= console.width:
        console.print(table)
        return
    # Console.print cannot go wider than its console: a console as wide as the table
    # writes to the same file (off a terminal there are no colours to keep).
    wide = Console(file=console.file, width=natural, no_color=True, highlight=False)
    wide.print(table)
