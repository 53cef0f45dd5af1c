"""Read a text input (a log file, or standard input) as one string; binary input is refused.

Bounded: at most MAX_LOG_BYTES are kept (the end of a longer log, where vLLM's root error is),
read in chunks so a 1 GB log or /dev/zero never sits in memory whole, and each line is cut to
MAX_LINE_CHARS (a 1 MB "RuntimeError: aaa..." line says nothing more than its start)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from servecheck.errors import InputError

MAX_LOG_BYTES = 32 * 2**20
MAX_LINE_CHARS = 4096
_CHUNK = 2**20


def read_text_input(name: str | None) -> str:
    """The text of file `name`, or of standard input when `name` is None or '-'."""
    label = "standard input" if name in (None, "-") else name
    try:
        if name in (None, "-"):
            stream = sys.stdin
            if not hasattr(stream, "buffer"):
                return _clip_lines(stream.read()[-MAX_LOG_BYTES:])
            data, cut = _tail(stream.buffer)
        else:
            path = Path(name)
            if "\x00" in name or not path.is_file():
                raise InputError(f"{name!r}: no such file")
            with path.open("rb") as f:
                if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    size = os.fstat(f.fileno()).st_size
                    f.seek(max(size - MAX_LOG_BYTES, 0))
                    cut = size > MAX_LOG_BYTES
                    data = f.read(MAX_LOG_BYTES)
                else:
                    data, cut = _tail(f)
    except OSError as exc:
        raise InputError(f"cannot read {label}: {exc.strerror or exc}") from None
    if b"\x00" in data[:8192]:
        raise InputError(f"{label} is not a text log")
    text = data.decode("utf-8", errors="replace")
    if cut:  # start at a whole line
        text = text[text.find("\n") + 1 :]
    return _clip_lines(text)


def _tail(stream) -> tuple[bytes, bool]:
    """The last MAX_LOG_BYTES of a stream, read in chunks, and whether anything was dropped.
    Text that is clearly binary (NUL bytes in the first chunk) stops the read at once."""
    kept = bytearray()
    cut = False
    first = True
    while chunk := stream.read(_CHUNK):
        if first and b"\x00" in chunk[:8192]:
            return bytes(chunk[:8192]), False
        first = False
        kept += chunk
        if len(kept) > 2 * MAX_LOG_BYTES:
            del kept[: len(kept) - MAX_LOG_BYTES]
            cut = True
    if len(kept) > MAX_LOG_BYTES:
        del kept[: len(kept) - MAX_LOG_BYTES]
        cut = True
    return bytes(kept), cut


def _clip_lines(text: str) -> str:
    lines = text.split("\n")
    if max(map(len, lines), default=0) <= MAX_LINE_CHARS:
        return text
    return "\n".join(line[:MAX_LINE_CHARS] for line in lines)
