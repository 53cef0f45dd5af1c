"""servecheck's on-disk cache of what it read from the Hub, keyed by commit sha (immutable
content): a repo's file list, its small JSON files and each shard's safetensors header.

    <root>/hub/models--org--name/refs/<revision>          commit sha
    <root>/hub/models--org--name/<sha>/files.json         the repo's file names at that commit
    <root>/hub/models--org--name/<sha>/files/<name>       config.json, the index, side files
    <root>/hub/models--org--name/<sha>/headers/<name>     <u64 file size><u64 n><n header bytes>

Every write is atomic (a temporary file renamed into place), so a crash or a concurrent
run never leaves a half-written entry. Unreadable entries count as absent.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
from pathlib import Path
from urllib.parse import quote

from servecheck.source.hfenv import DEFAULT_REVISION, repo_folder
from servecheck.source.modelref import is_commit


class HeaderCache:
    def __init__(self, root: Path, repo_id: str) -> None:
        self.repo = root / "hub" / repo_folder(repo_id)

    # -- revision -> commit
    def commit(self, revision: str | None) -> str | None:
        rev = revision or DEFAULT_REVISION
        if is_commit(rev):
            return rev
        text = _read(self.repo / "refs" / quote(rev, safe=""))
        sha = text.decode("ascii", "replace").strip() if text else ""
        return sha if is_commit(sha) else None

    def set_commit(self, revision: str | None, sha: str) -> None:
        rev = revision or DEFAULT_REVISION
        if not is_commit(rev):
            _write(self.repo / "refs" / quote(rev, safe=""), sha.encode("ascii"))

    # -- file list
    def files(self, sha: str) -> list[str] | None:
        raw = _read(self.repo / sha / "files.json")
        try:
            names = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            return names
        return None

    def set_files(self, sha: str, names: list[str]) -> None:
        _write(self.repo / sha / "files.json", json.dumps(sorted(names)).encode())

    # -- small files
    def file_path(self, sha: str, name: str) -> Path:
        return self.repo / sha / "files" / quote(name, safe="")

    def file(self, sha: str, name: str) -> bytes | None:
        return _read(self.file_path(sha, name))

    def set_file(self, sha: str, name: str, data: bytes) -> Path:
        path = self.file_path(sha, name)
        _write(path, data)
        return path

    # -- shard headers
    def header(self, sha: str, name: str) -> tuple[int, bytes] | None:
        """(file size, the header's 8-byte prefix + JSON bytes), or None."""
        raw = _read(self.repo / sha / "headers" / quote(name, safe=""))
        if raw is None or len(raw) < 16:
            return None
        size, n = struct.unpack("<QQ", raw[:16])
        if len(raw) != 16 + n:
            return None
        return size, raw[16:]

    def set_header(self, sha: str, name: str, file_size: int, head: bytes) -> None:
        data = struct.pack("<QQ", file_size, len(head)) + head
        _write(self.repo / sha / "headers" / quote(name, safe=""), data)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _write(path: Path, data: bytes) -> None:
    """Write atomically; a cache that cannot be written (read-only home) is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
