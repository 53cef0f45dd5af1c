"""A Hub-compatible HTTP server on loopback for tests and benchmarks.

It serves the routes huggingface_hub and servecheck use, the way the Hub answers them:

    GET  /api/models/{org}/{name}[/revision/{rev}]   repo info: sha, siblings, gated, private
    GET  /{org}/{name}/resolve/{rev}/{file}           the file; Range -> 206 + Content-Range
    HEAD /{org}/{name}/resolve/{rev}/{file}           ETag, X-Repo-Commit, Content-Length

with the Hub's error codes (X-Error-Code RepoNotFound / RevisionNotFound / EntryNotFound /
GatedRepo, 401 without a token, 403 with a token that has no access). Files are served from
disk with seek + read, so a sparse full-size checkpoint costs nothing to serve. Faults can be
injected: latency per request, a status answered N times first (429, 503), a delay longer
than the client's timeout, a server that ignores Range. Every request is logged.

Olah's `mirror` command was tried first: it answers a Range request with 200 and the whole
file, reads each file into memory, and has no gated repos or fault injection.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class Repo:
    commits: dict[str, dict[str, Path]] = field(default_factory=dict)  # sha -> name -> file
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> sha
    gated: bool = False
    private: bool = False
    tokens: frozenset[str] = frozenset()  # tokens with access (gated or private)


@dataclass
class Fault:
    match: str  # a substring of the request path
    status: int = 429
    times: int = 1
    delay: float = 0.0  # seconds to wait before answering (a hung server)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Logged:
    method: str
    path: str
    range: str | None
    status: int
    sent: int  # body bytes sent


class HubServer:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.latency = 0.0
        self.ignore_range = False
        self.faults: list[Fault] = []
        self.log: list[Logged] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._conns: set[socket.socket] = set()

    # -- content
    def add_commit(
        self,
        repo_id: str,
        files: dict[str, Path],
        *,
        branch: str = "main",
        tags: tuple[str, ...] = (),
    ) -> str:
        """Add a commit holding `files` (name -> path on disk) as the tip of `branch`."""
        repo = self.repos.setdefault(repo_id, Repo())
        digest = hashlib.sha1(repo_id.encode())
        for name in sorted(files):
            digest.update(name.encode() + str(files[name].stat().st_size).encode())
        digest.update(str(len(repo.commits)).encode())
        sha = digest.hexdigest()
        repo.commits[sha] = dict(files)
        repo.refs[branch] = sha
        for tag in tags:
            repo.refs[tag] = sha
        return sha

    def add_folder(self, repo_id: str, folder: Path, **kwargs) -> str:
        files = {p.name: p for p in sorted(folder.iterdir()) if p.is_file()}
        return self.add_commit(repo_id, files, **kwargs)

    # -- lifecycle
    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Stop serving and close every kept-alive connection, so that no client reaches this
        server's handlers through a pooled connection once another server has its port."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        with self._lock:
            conns, self._conns = set(self._conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    # -- what the tests read back
    def requests(self, contains: str = "") -> list[Logged]:
        with self._lock:
            return [r for r in self.log if contains in r.path]

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    def _record(self, entry: Logged) -> None:
        with self._lock:
            self.log.append(entry)

    def _fault(self, path: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.match in path and f.times > 0:
                    f.times -= 1
                    return f
        return None


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that closes early (it read the bytes it wanted) is normal, not news."""


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        with self.hub._lock:
            self.hub._conns.add(self.connection)

    def finish(self) -> None:
        with self.hub._lock:
            self.hub._conns.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    # -- dispatch
    def _serve(self, head: bool) -> None:
        hub = self.hub
        if hub.latency:
            time.sleep(hub.latency)
        path = unquote(urlsplit(self.path).path)
        fault = hub._fault(path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            return self._send(fault.status, b"", fault.headers, head)
        m = re.match(r"^/api/models/([^/]+/[^/]+?)(?:/revision/(.+))?$", path)
        if m:
            return self._info(m.group(1), m.group(2), head)
        m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if m:
            return self._file(m.group(1), m.group(2), m.group(3), head)
        self._send(404, b"not found", {}, head)

    def _access(self, repo_id: str, gated_files: bool) -> tuple[Repo | None, int, str]:
        """(repo, 0, "") when allowed, else (None, status, X-Error-Code)."""
        repo = self.hub.repos.get(repo_id)
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth else ""
        if repo is None or (repo.private and token not in repo.tokens):
            return None, 401, "RepoNotFound"
        if repo.gated and gated_files and token not in repo.tokens:
            return None, (403 if token else 401), "GatedRepo"
        return repo, 0, ""

    def _commit(self, repo: Repo, rev: str | None) -> str | None:
        rev = rev or "main"
        if rev in repo.commits:
            return rev
        return repo.refs.get(rev)

    def _info(self, repo_id: str, rev: str | None, head: bool) -> None:
        repo, status, code = self._access(repo_id, gated_files=False)
        if repo is None:
            return self._error(status, code, head)
        sha = self._commit(repo, rev)
        if sha is None:
            return self._error(404, "RevisionNotFound", head)
        body = {
            "id": repo_id,
            "modelId": repo_id,
            "sha": sha,
            "private": repo.private,
            "gated": "manual" if repo.gated else False,
            "disabled": False,
            "siblings": [{"rfilename": n} for n in sorted(repo.commits[sha])],
        }
        self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head)

    def _file(self, repo_id: str, rev: str, name: str, head: bool) -> None:
        repo, status, code = self._access(repo_id, gated_files=True)
        if repo is None:
            return self._error(status, code, head)
        sha = self._commit(repo, rev)
        if sha is None:
            return self._error(404, "RevisionNotFound", head)
        path = repo.commits[sha].get(name)
        if path is None or not path.is_file():
            return self._error(404, "EntryNotFound", head)
        size = path.stat().st_size
        headers = {
            "ETag": f'"{hashlib.sha1(f"{sha}/{name}".encode()).hexdigest()}"',
            "X-Repo-Commit": sha,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        if rng and not self.hub.ignore_range:
            m = _RANGE.match(rng.strip())
            if m is None:
                return self._send(416, b"", {"Content-Range": f"bytes */{size}"}, head)
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
            if start >= size:
                return self._send(416, b"", {"Content-Range": f"bytes */{size}"}, head)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = max(end - start + 1, 0)
        # Logged before the answer goes out: a client that has read it finds it logged.
        entry = Logged(self.command, self.path, rng, status, 0 if head else length)
        self.hub._record(entry)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        sent = 0
        if not head:
            try:
                with path.open("rb") as f:
                    f.seek(start)
                    while sent < length:
                        chunk = f.read(min(1 << 20, length - sent))
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                        sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                entry.sent = sent  # the client read what it needed and closed

    def _error(self, status: int, code: str, head: bool) -> None:
        msg = {"RepoNotFound": "Repository not found", "GatedRepo": "Access to model is restricted"}
        self._send(
            status,
            json.dumps({"error": msg.get(code, code)}).encode(),
            {"X-Error-Code": code, "X-Error-Message": msg.get(code, code)},
            head,
        )

    def _send(self, status: int, body: bytes, headers: dict[str, str], head: bool) -> None:
        self.hub._record(
            Logged(self.command, self.path, self.headers.get("Range"), status, len(body))
        )
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)
