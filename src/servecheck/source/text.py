"""Read a text input (a log file, or standard input) as one string; binary input is refused."""

from __future__ import annotations

import sys
from pathlib import Path

from servecheck.errors import InputError


def read_text_input(name: str | None) -> str:
    """The text of file `name`, or of standard input when `name` is None or '-'."""
    label = "standard input" if name in (None, "-") else name
    try:
        if name in (None, "-"):
            stream = sys.stdin
            data = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
        else:
            path = Path(name)
            if not path.is_file():
                raise InputError(f"{name}: no such file")
            data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {label}: {exc.strerror or exc}") from None
    if isinstance(data, str):
        return data
    if b"\x00" in data[:8192]:
        raise InputError(f"{label} is not a text log")
    return data.decode("utf-8", errors="replace")
