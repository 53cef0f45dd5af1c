"""Tables for terminal text that fit the terminal with words whole (never cut with "…").

A Table here keeps its rows and, when printed, gives each column a width between its longest
word and its longest line: the widest columns give way first, and a column narrower than its
longest word only when nothing else can (then the word folds, still never an ellipsis). Borders
are a rule under the header and two spaces between columns, so wide tables fit 80 columns; in
a pipe the console is full width and nothing wraps (render/console.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions


class TextTable:
    """Columns named by their headers; a header ending in '>' is right-justified."""

    def __init__(self, *headers: str, title: str | None = None, caption: str | None = None):
        self.headers = [h.rstrip(">") for h in headers]
        self.right = [h.endswith(">") for h in headers]
        self.title = title
        self.caption = caption
        self.rows: list[tuple[Any, ...]] = []

    def add_row(self, *cells: Any) -> None:
        self.rows.append(cells)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Any]:
        from rich import box
        from rich.table import Table as RichTable

        n = len(self.headers)
        overhead = 2 * (n - 1)  # one space of padding and one divider between columns
        widths = fit_widths(self._measure(), options.max_width - overhead)
        t = RichTable(
            title=self.title,
            title_justify="left",
            caption=self.caption,
            caption_justify="left",
            box=box.SIMPLE_HEAD,
            padding=(0, 1, 0, 0),
            pad_edge=False,
            show_edge=False,
        )
        for header, right, width in zip(self.headers, self.right, widths, strict=True):
            t.add_column(header, justify="right" if right else "left", width=width, overflow="fold")
        for row in self.rows:
            t.add_row(*row)
        yield t

    def _measure(self) -> list[tuple[int, int]]:
        """(longest word, longest line) per column, over the header and every cell."""
        out = []
        for i, header in enumerate(self.headers):
            texts = [header, *(_plain(row[i]) for row in self.rows if i < len(row))]
            longest_word = max((_width(w) for t in texts for w in t.split()), default=1)
            longest_line = max((_width(line) for t in texts for line in t.splitlines()), default=1)
            out.append((max(longest_word, 1), max(longest_line, 1)))
        return out


def fit_widths(ranges: list[tuple[int, int]], available: int) -> list[int]:
    """Column widths within `available`: start at each longest line, then narrow the widest
    column still wider than its longest word, one character at a time; below the longest words
    only when those alone do not fit."""
    widths = [longest for _, longest in ranges]
    while sum(widths) > available:
        above = [i for i, (word, _) in enumerate(ranges) if widths[i] > word]
        candidates = above or [i for i in range(len(widths)) if widths[i] > 1]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def grid() -> Any:
    """Label / value rows: a bold label column and a value column that wraps."""
    from rich.table import Table as RichTable

    t = RichTable.grid(padding=(0, 2))
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")
    return t


def _plain(cell: Any) -> str:
    return cell.plain if hasattr(cell, "plain") else str(cell)


def _width(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)
