"""Data tables (TOML) shipped with servecheck, read from the package folder.

Parsing TOML is slow in pure Python (the tables a check reads took ~50 ms of every run), so
each parsed table is also kept in servecheck's cache folder as a `marshal` file named after the
table's size and CRC-32, the way Python keeps .pyc files beside sources: an edited table gets a
new name, and a cache that cannot be read or written is simply not used.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def load_toml(name: str) -> dict[str, Any]:
    """Parse one of the package's knowledge files."""
    raw = (HERE / name).read_bytes()
    cached = _cache_file(name, raw)
    if cached is not None:
        try:
            data = marshal.loads(cached.read_bytes())
            if type(data) is dict:
                return data
        except (OSError, EOFError, ValueError, TypeError):
            pass
    data = _parse(raw)
    if cached is not None:
        _store(cached, data)
    return data


def _parse(raw: bytes) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib.loads(raw.decode("utf-8"))


def _cache_file(name: str, raw: bytes) -> Path | None:
    """Where the parsed `name` with these bytes is cached (None: no cache folder)."""
    env = os.environ
    root = env.get("SERVECHECK_CACHE_DIR") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "servecheck"
    )
    if root.startswith("~"):
        root = os.path.expanduser(root)
    if not os.path.isabs(root):
        return None
    py = f"py{sys.version_info[0]}{sys.version_info[1]}m{marshal.version}"
    key = f"{len(raw)}-{zlib.crc32(raw):08x}"
    return Path(root) / "knowledge" / f"{Path(name).stem}-{key}-{py}.marshal"


def _store(path: Path, data: dict[str, Any]) -> None:
    """Write the cache file atomically; any failure leaves no file and is ignored."""
    try:
        blob = marshal.dumps(data)
    except ValueError:  # a TOML date or time: not cached
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(blob)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def load_json(name: str) -> Any:
    """Parse one of the package's JSON knowledge files (large generated tables)."""
    import json

    return json.loads((HERE / name).read_bytes())
