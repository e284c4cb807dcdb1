"""Tables that fit the terminal without cutting a run id or a host name.

A `Grid` is a title, column names and rows of rich-markup cells; some columns are keys (run id,
host) that must be shown whole. `show(console, grid)` prints a rich table when the key columns fit
at full length beside a narrow minimum for the others (the others wrap); otherwise it turns the
table: one block per row, the key first, then `column: value` lines that the terminal may wrap.
"""
from __future__ import annotations

import dataclasses

from rich.console import Console
from rich.table import Table
from rich.text import Text

#: narrowest width given to a column that may wrap
MIN_WRAP = 8


@dataclasses.dataclass
class Grid:
    title: str
    columns: list[str]
    rows: list[list[str]] = dataclasses.field(default_factory=list)
    keys: tuple[int, ...] = (0,)

    def add(self, *cells: str) -> None:
        self.rows.append([str(c) for c in cells])


def _plain(cell: str) -> str:
    return Text.from_markup(cell).plain


def _widths(grid: Grid) -> list[int]:
    out = []
    for i, name in enumerate(grid.columns):
        cells = [max((len(line) for line in _plain(r[i]).splitlines()), default=0) for r in grid.rows]
        longest = max([len(name), *cells])
        out.append(longest if i in grid.keys else min(longest, max(MIN_WRAP, len(name))))
    return out


def fits(grid: Grid, width: int) -> bool:
    """Whether the table layout fits `width` columns with every key cell whole."""
    return sum(_widths(grid)) + 3 * len(grid.columns) + 1 <= width


def table(grid: Grid) -> Table:
    t = Table(title=grid.title, title_justify="left")
    widths = _widths(grid)
    for i, name in enumerate(grid.columns):
        if i in grid.keys:
            t.add_column(name, no_wrap=True, min_width=widths[i], style="bold" if i == grid.keys[0] else None)
        else:
            t.add_column(name, overflow="fold")
    for row in grid.rows:
        t.add_row(*row)
    return t


def turned(console: Console, grid: Grid) -> None:
    """One block per row: the key cells on the first line, then `column: value` per other column."""
    console.print(grid.title, soft_wrap=True)
    for row in grid.rows:
        head = "  ".join(row[i] for i in grid.keys)
        console.print(Text.from_markup(head, style="bold"), soft_wrap=True)
        for i, name in enumerate(grid.columns):
            if i not in grid.keys:
                console.print(f"  {name}: " + row[i].replace("\n", "\n    "), soft_wrap=True)


def show(console: Console, grid: Grid) -> None:
    if fits(grid, console.width):
        console.print(table(grid))
    else:
        turned(console, grid)
