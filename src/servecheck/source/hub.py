"""Read a Hub model without downloading its weights: the repo's file list and commit (one
request), config.json and the side files vLLM reads, the shard index, and each safetensors
header by HTTP range requests, fetched by a bounded pool of threads.

Budget per shard: one request when the header fits the bytes read speculatively (sized from
the tensor names the index lists for that shard), two when it is larger. Everything read is
kept in servecheck's header cache under its commit sha, so a second check of the same
revision costs one request (revision -> commit), none for a commit sha, and works offline.
"""

from __future__ import annotations

import struct
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import quote

from servecheck.errors import InputError
from servecheck.source import hubhttp, jsonin
from servecheck.source.checkpoint import (
    INDEX_NAME,
    SIDE_FILES,
    Checkpoint,
    ShardProblem,
    Source,
    assemble,
    index_weight_map,
    other_weight_files,
    shard_selection,
    truncation_problem,
)
from servecheck.source.hfcache import cached_commit
from servecheck.source.hfenv import HubSettings
from servecheck.source.local import parse_json
from servecheck.source.modelref import HubRef, is_commit
from servecheck.source.quantcheck import check_quant_configs
from servecheck.source.safetensors import (
    MAX_HEADER_BYTES,
    HeaderTruncated,
    ShardHeader,
    check_header_length,
    parse_header_bytes,
)

# NOTE: bytes read before knowing a header's length when the index cannot size it (a single
# model.safetensors): headers of single-file models are mostly 10-60 KB.
DEFAULT_SPECULATIVE = 64 * 1024
# NOTE: bytes per header entry besides its name: `"":{"dtype":"F8_E4M3","shape":[5120,1536],
# "data_offsets":[1234567890,1234567890]},` is about 80; 96 leaves room for 3-D shapes.
ENTRY_BYTES = 96
# NOTE: room for __metadata__ and padding in every header.
HEADER_SLACK = 2048
# NOTE: concurrent requests; each is a small range read, so 16 keep a 93-shard model to six
# round trips without looking like a download to the server.
POOL = 16
UNKNOWN_SIZE = 2**64 - 1  # a server that says nothing about the file's size
_T = TypeVar("_T")


class FetchProgress(Protocol):
    """Told about shard headers as they arrive (a progress bar at the edge)."""

    def start(self, shards: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def stop(self) -> None: ...


@dataclass
class FetchStats:
    """What one read cost: requests sent and bytes received, and the header bytes they held."""

    requests: int = 0
    bytes: int = 0
    header_bytes: int = 0
    cached_headers: int = 0
    per_shard: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, body: hubhttp.Body, shard: str | None = None) -> None:
        with self._lock:
            self.requests += body.requests
            self.bytes += len(body.data)
            if shard is not None:
                self.per_shard[shard] += body.requests


@dataclass(frozen=True)
class HubRead:
    checkpoint: Checkpoint
    stats: FetchStats


def open_hub(ref: HubRef, s: HubSettings, progress: FetchProgress | None = None) -> HubRead:
    """The Checkpoint of a Hub model (or an InputError in one sentence)."""
    reader = _Reader(ref, s)
    try:
        return HubRead(reader.read(progress), reader.stats)
    except InputError:
        raise
    except Exception as exc:
        if hubhttp.is_hub_error(exc):
            raise InputError(hubhttp.explain(exc, s, ref.repo_id, ref.revision)) from exc
        raise


class _Reader:
    def __init__(self, ref: HubRef, s: HubSettings) -> None:
        from servecheck.source.headercache import HeaderCache

        self.ref, self.s = ref, s
        self.cache = HeaderCache(s.servecheck_cache, ref.repo_id)
        self.stats = FetchStats()
        self.missing: list[str] = []  # offline: what the cache lacks
        self._headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            self._headers = hubhttp.auth_headers()
        return self._headers

    def read(self, progress: FetchProgress | None) -> Checkpoint:
        commit, files = self._commit_and_files()
        top = sorted(f for f in files if "/" not in f)
        if "config.json" not in top:
            raise InputError(_no_config(self.ref, commit, files))
        wanted = ["config.json", *(n for n in SIDE_FILES if n in top)]
        if INDEX_NAME in top:
            wanted.append(INDEX_NAME)
        raw = self._small_files(commit, wanted)
        shard_names = [f for f in top if f.endswith(".safetensors")]
        weight_map = None
        if INDEX_NAME in raw:
            index = jsonin.parse_json(
                raw[INDEX_NAME], f"{self.ref.repo_id}: {INDEX_NAME}", check=False
            )
            weight_map = index_weight_map(index, f"{self.ref.repo_id}: {INDEX_NAME}")
        files_to_read, missing, outside = shard_selection(shard_names, weight_map)
        heads = self._shard_heads(commit, files_to_read, weight_map, progress)
        if self.missing:
            raise InputError(self._offline_cold(commit))
        config = parse_json(raw["config.json"], f"{self.ref.repo_id}: config.json")
        side = {n: parse_json(raw[n], f"{self.ref.repo_id}: {n}") for n in SIDE_FILES if n in raw}
        check_quant_configs(config, side)
        source = Source(
            kind="hub",
            repo_id=self.ref.repo_id,
            revision=self.ref.revision,
            commit=commit,
            config_file=self.cache.file_path(commit, "config.json"),
            offline=self.stats.requests == 0,
        )
        if not files_to_read and weight_map is None:
            return Checkpoint(
                location=self.ref.repo_id,
                config=config,
                hf_quant_config=side.get("hf_quant_config.json"),
                side_files=side,
                other_weight_files=other_weight_files(top),
                source=source,
            )
        shards, problems = [], []
        for name in files_to_read:
            shard, problem = shard_from_head(name, *heads[name])
            if problem is not None:
                problems.append(problem)
            if shard is not None:
                shards.append(shard)
        return assemble(
            self.ref.repo_id,
            config,
            side,
            weight_map=weight_map,
            missing=missing,
            outside=outside,
            shards=shards,
            problems=problems,
            source=source,
        )

    # -- revision -> commit, and the repo's file list at that commit
    def _commit_and_files(self) -> tuple[str, list[str]]:
        ref, s = self.ref, self.s
        if s.offline:
            commit = self.cache.commit(ref.revision) or cached_commit(s.hub_cache, ref)
            files = self.cache.files(commit) if commit else None
            if commit is None or files is None:
                raise InputError(
                    f"offline, and servecheck has not read {ref} before (its cache holds no "
                    f"{'commit' if commit is None else 'file list'} for it): run once with "
                    "network access, without --offline or HF_HUB_OFFLINE=1"
                )
            return commit, files
        if ref.pinned and (files := self.cache.files(ref.revision or "")) is not None:
            return ref.revision or "", files
        url = f"{s.endpoint}/api/models/{ref.repo_id}"
        if ref.revision:
            url += f"/revision/{quote(ref.revision, safe='')}"
        body = hubhttp.get(s, url, headers=self.headers)
        self.stats.add(body)
        commit, files = _parse_repo_info(body.data, ref)
        self.cache.set_commit(ref.revision, commit)
        self.cache.set_files(commit, files)
        return commit, files

    # -- config.json, side files, the index
    def _small_files(self, commit: str, names: list[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        todo = []
        for name in names:
            data = self.cache.file(commit, name)
            if data is not None:
                out[name] = data
            elif self.s.offline:
                self.missing.append(name)
            else:
                todo.append(name)

        def fetch(name: str) -> tuple[str, bytes]:
            body = hubhttp.get(self.s, self._url(commit, name), headers=self.headers)
            self.stats.add(body)
            self.cache.set_file(commit, name, body.data)
            return name, body.data

        out.update(_pool_map(fetch, todo))
        return out

    # -- safetensors headers
    def _shard_heads(
        self,
        commit: str,
        names: list[str],
        weight_map: Mapping[str, str] | None,
        progress: FetchProgress | None,
    ) -> dict[str, tuple[int | None, bytes]]:
        out: dict[str, tuple[int | None, bytes]] = {}
        todo = []
        for name in names:
            hit = self.cache.header(commit, name)
            if hit is not None:
                size, head = hit
                out[name] = (None if size == UNKNOWN_SIZE else size, head)
                self.stats.cached_headers += 1
            elif self.s.offline:
                self.missing.append(name)
            else:
                todo.append(name)
        if not todo:
            return out
        guess = speculative_sizes(weight_map)

        def fetch(name: str) -> tuple[str, tuple[int | None, bytes]]:
            size, head = self._fetch_head(commit, name, guess.get(name, DEFAULT_SPECULATIVE))
            self.cache.set_header(commit, name, UNKNOWN_SIZE if size is None else size, head)
            if progress is not None:
                progress.advance(len(head))
            return name, (size, head)

        if progress is not None:
            progress.start(len(todo))
        try:
            out.update(_pool_map(fetch, todo))
        finally:
            if progress is not None:
                progress.stop()
        return out

    def _fetch_head(self, commit: str, name: str, first: int) -> tuple[int | None, bytes]:
        """(file size or None, the 8-byte prefix and as much of the header as exists)."""
        url = self._url(commit, name)
        body = hubhttp.get(self.s, url, headers=self.headers, limit=first)
        self.stats.add(body, name)
        data, total = body.data, body.total
        if total is None and len(data) < first:
            total = len(data)  # the whole file came back
        if len(data) < 8:
            return total, data
        (header_len,) = struct.unpack("<Q", data[:8])
        need = 8 + min(header_len, MAX_HEADER_BYTES + 1)
        if header_len > MAX_HEADER_BYTES or (total is not None and need > total):
            return total, data[:8]  # refused or truncated: the prefix says why
        if len(data) < need:
            rest = hubhttp.get(
                self.s, url, headers=self.headers, start=len(data), limit=need - len(data)
            )
            self.stats.add(rest, name)
            data += rest.data
            if len(data) < need:
                raise InputError(
                    f"{self.ref.repo_id}: {name}: the server sent {len(data):,} bytes of a "
                    f"{need:,}-byte header"
                )
        with self.stats._lock:
            self.stats.header_bytes += need
        return total, data[:need]

    def _url(self, commit: str, name: str) -> str:
        return hubhttp.file_url(self.s, self.ref.repo_id, name, commit)

    def _offline_cold(self, commit: str) -> str:
        shards = [m for m in self.missing if m.endswith(".safetensors")]
        other = [m for m in self.missing if not m.endswith(".safetensors")]
        parts = other + ([f"{len(shards)} shard header(s) ({_names(shards)})"] if shards else [])
        return (
            f"offline, and servecheck's cache lacks part of {self.ref} at commit {commit[:12]}: "
            f"{'; '.join(parts)}. Run once with network access to fill it"
        )


def speculative_sizes(weight_map: Mapping[str, str] | None) -> dict[str, int]:
    """Bytes to read first from each shard: its header's size estimated from the names of the
    tensors the index puts in it, rounded up to 4 KiB."""
    if not weight_map:
        return {}
    est: Counter = Counter()
    for tensor, shard in weight_map.items():
        est[shard] += len(tensor) + ENTRY_BYTES
    return {k: -(-(8 + v + HEADER_SLACK) // 4096) * 4096 for k, v in est.items()}


def shard_from_head(
    name: str, size: int | None, head: bytes
) -> tuple[ShardHeader | None, ShardProblem | None]:
    """Parse a header read from the Hub exactly as a local file's (same problems, same words)."""
    if len(head) < 8:
        n = len(head) if size is None else size
        return None, ShardProblem(name, f"{name}: not a safetensors file ({n} bytes long)")
    try:
        header_len = check_header_length(name, head, UNKNOWN_SIZE if size is None else size)
        shard = parse_header_bytes(Path(name), head[8 : 8 + header_len], size or 0)
    except HeaderTruncated as exc:
        return None, ShardProblem(name, str(exc), "header_truncated")
    except InputError as exc:
        return None, ShardProblem(name, str(exc))
    if size is None:  # nothing says otherwise: take the file to be as long as its header says
        shard = replace(shard, file_size=8 + shard.header_bytes + shard.data_bytes_declared)
    return shard, truncation_problem(shard)


def _parse_repo_info(data: bytes, ref: HubRef) -> tuple[str, list[str]]:
    info = parse_json(data, f"the Hub's answer about {ref}")
    sha, siblings = info.get("sha"), info.get("siblings")
    if not isinstance(sha, str) or not is_commit(sha):
        raise InputError(f"the Hub's answer about {ref} has no commit sha")
    if not isinstance(siblings, list):
        raise InputError(f"the Hub's answer about {ref} does not list its files")
    files = []
    for entry in siblings:
        name = entry.get("rfilename") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name or name.startswith("/") or ".." in name:
            raise InputError(f"the Hub's answer about {ref} lists a file without a valid name")
        files.append(name)
    return sha, files


def _no_config(ref: HubRef, commit: str, files: list[str]) -> str:
    gguf = [f for f in files if f.lower().endswith(".gguf")]
    weights = other_weight_files(files)
    found = (
        f"{len(gguf)} GGUF file(s) ({_names(gguf)}); vLLM loads a GGUF file given by path, "
        "with --tokenizer naming the original model"
        if gguf
        else (f"{_names(weights)}" if weights else f"{_names(sorted(files)) or 'no files'}")
    )
    return f"{ref} has no config.json at commit {commit[:12]}: found {found}"


def _names(names: list[str], show: int = 3) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > show else ""
    return ", ".join(names[:show]) + more


def _pool_map(fn: Callable[[str], tuple[str, _T]], names: list[str]) -> dict[str, _T]:
    if not names:
        return {}
    if len(names) == 1:
        return dict([fn(names[0])])
    pool = ThreadPoolExecutor(max_workers=min(POOL, len(names)))
    try:
        return dict(pool.map(fn, names))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
