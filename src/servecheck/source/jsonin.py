"""JSON from files that strangers publish, read once and checked at the edge.

Every JSON file servecheck reads from a model (config.json, the index, hf_quant_config.json,
tokenizer_config.json, ...) comes through here: a regular file only (never a device, FIFO or
folder), a bounded size, UTF-8 text, an object at the top, nesting at most MAX_DEPTH levels,
no NaN, integers of a sane magnitude, every string encodable. Anything else is an
InputError naming the file, the key path and what was expected, so nothing downstream meets a
NaN, a thousand-digit integer, a lone surrogate or a RecursionError.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

from servecheck.errors import InputError

MiB = 2**20
# config.json is a few KB (the largest published ones ~100 KB); side files (tokenizer configs
# with their added tokens) and indexes (88k entries for GLM-4.5: ~9 MB) are larger.
MAX_CONFIG_BYTES = 8 * MiB
MAX_SIDE_FILE_BYTES = 32 * MiB
MAX_INDEX_BYTES = 64 * MiB
MAX_DEPTH = 64
# Published configs hold integers up to 1e30 (tokenizer model_max_length); beyond 2**128 a
# number is corrupt, and Python refuses to parse more than 4,300 digits anyway.
MAX_INT = 2**128


def read_bytes(path: Path, what: str, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, or an InputError saying why not.

    Opened without blocking (a FIFO named config.json cannot hang us) and checked with fstat
    (a link to /dev/zero is refused, not read forever)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a device, pipe or socket"
            raise InputError(f"{what} {path} is {kind}, not a file")
        if info.st_size > limit:
            raise InputError(
                f"{what} {path} is {info.st_size:,} bytes, over the {limit:,}-byte limit for "
                "this file; it is not a configuration file"
            )
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise InputError(f"{what} {path} grew past the {limit:,}-byte limit while being read")
    return data


def read_json(path: Path, what: str, limit: int = MAX_CONFIG_BYTES, *, check: bool = True) -> dict:
    """A JSON object from a file; `what` names the file in messages."""
    return parse_json(read_bytes(path, what, limit), f"{what} {path}", check=check)


def parse_json(data: str | bytes, what: str, *, check: bool = True) -> dict:
    """A JSON object from text or UTF-8 bytes, or an InputError naming `what`.

    With `check` (the default) every value is walked: nesting, numbers and strings as the
    module docstring says. Without it (large files whose one used key is checked by its
    reader, like an index's weight_map) only the parse's own limits apply."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{what} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                f"{exc.start:,})"
            ) from None
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{what} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except RecursionError:
        raise InputError(f"{what} is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise InputError(f"{what} holds a number too long to be real ({exc})") from None
    if not isinstance(value, dict):
        raise InputError(f"{what} is not a JSON object (it is a {_kind(value)})")
    if check:
        check_values(value, what)
    return value


def check_values(value: Any, what: str) -> None:
    """Walk a parsed JSON value without recursion; raise InputError at the first nesting past
    MAX_DEPTH, non-finite or huge number, or string that is not valid Unicode."""
    stack: list[tuple[Any, tuple, int]] = [(value, (), 0)]
    while stack:
        item, path, depth = stack.pop()
        kind = type(item)
        if kind is dict:
            if depth >= MAX_DEPTH:
                raise InputError(f"{what}: {key_path(path)} is nested more than {MAX_DEPTH} deep")
            for k, v in item.items():
                if not _text_ok(k):
                    raise InputError(f"{what}: a key under {key_path(path)} is not valid text")
                stack.append((v, (*path, k), depth + 1))
        elif kind is list:
            if depth >= MAX_DEPTH:
                raise InputError(f"{what}: {key_path(path)} is nested more than {MAX_DEPTH} deep")
            stack.extend((v, (*path, i), depth + 1) for i, v in enumerate(item))
        elif kind is float:
            # Infinity is real (Mamba2's time_step_limit [0.0, Infinity]); NaN never is.
            if math.isnan(item):
                raise InputError(f"{what}: {key_path(path)} is NaN; expected a number")
        elif kind is int:
            if not -MAX_INT < item < MAX_INT:
                raise InputError(
                    f"{what}: {key_path(path)} is a {len(str(abs(item)))}-digit number; "
                    "expected a realistic value"
                )
        elif kind is str and not _text_ok(item):
            raise InputError(f"{what}: {key_path(path)} is not valid text (a lone surrogate)")


def _text_ok(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def key_path(path: tuple) -> str:
    """`quantization_config.config_groups.group_0.targets[1]`; `the top level` for ()."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the top level"


def _kind(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )
