"""Where output goes: a rich Console for text, plain writes for JSON and markdown.

On a terminal the console wraps to its width (cells wrap, nothing is cut with an ellipsis);
when standard output is a pipe or a file the text is plain and full width, so `| grep` sees
whole lines. NO_COLOR (any value) turns colour off.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

PIPE_WIDTH = 1000  # "full width": wide enough that no table or line is wrapped in a pipe
VERDICT_STYLE = {"ok": "bold green", "warn": "bold yellow", "fail": "bold red"}


def make_console(stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    tty = _isatty(stream)
    return Console(
        file=stream if tty else _TrailingSpaceStripper(stream),
        width=None if tty else PIPE_WIDTH,
        no_color="NO_COLOR" in os.environ,
        highlight=False,
        soft_wrap=False,
        force_terminal=None,
    )


class _TrailingSpaceStripper:
    """A file for the console in a pipe: table cells are padded with spaces to the column
    width; lines leave without them."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.pending = ""

    def write(self, text: str) -> int:
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        if lines:
            self.stream.write("".join(line.rstrip(" ") + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if self.pending.strip(" ") == "":
            return  # spaces only so far: they may be trailing; keep them until the line ends
        self.stream.write(self.pending)
        self.pending = ""
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.stream.fileno()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def write_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def note(text: str) -> None:
    """A one-line note on standard error (never mixed into JSON or markdown on stdout)."""
    sys.stderr.write(f"note: {text}\n")
