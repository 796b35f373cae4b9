"""Tables written to a file or a pipe arrive whole, not cut at 80 columns."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from e2e_recon.console_output import print_table

CELL = "a_long_condition_name_" * 6  # 132 characters in one cell


def _table() -> Table:
    table = Table(title="wide")
    table.add_column("condition")
    table.add_column("value")
    table.add_row(CELL, "0.123")
    return table


def test_table_in_a_file_is_not_cut_at_80_columns() -> None:
    out = io.StringIO()
    console = Console(file=out)  # not a terminal: 80 columns by default
    assert not console.is_terminal and console.width == 80
    print_table(console, _table())
    text = out.getvalue()
    assert CELL in text and "0.123" in text
    assert max(len(line) for line in text.splitlines()) > 80
    assert "\x1b[" not in text  # no colour codes in a log file


def test_narrow_table_and_terminal_unchanged() -> None:
    small = Table()
    small.add_column("x")
    small.add_row("1")
    out = io.StringIO()
    print_table(Console(file=out), small)
    reference = io.StringIO()
    Console(file=reference).print(small)
    assert out.getvalue() == reference.getvalue()
    terminal = io.StringIO()
    print_table(Console(file=terminal, force_terminal=True, width=60), _table())
    assert CELL not in terminal.getvalue()  # a terminal still gets the table fitted to it
