"""HTTP to the Hub through huggingface_hub: its shared client (proxies, user settings), its
auth headers (HF_TOKEN, `hf auth login`), its retries with backoff on 429 and 5xx, and its
errors, turned into one sentence each (InputError) for the user.

huggingface_hub is imported here, on first use, never at servecheck's start-up. The calls
used exist in every huggingface_hub from 0.24 (requests inside) to 2.x (httpx inside).
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from servecheck.errors import InputError
from servecheck.source.hfenv import HubSettings

# huggingface_hub utils/_http.py _DEFAULT_RETRY_ON_STATUS_CODES (2.x).
RETRY_STATUS = (408, 429, 500, 502, 503, 504)
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
# Modules whose exceptions mean "the network failed" (not a servecheck bug).
_NETWORK_MODULES = ("httpx", "httpx2", "httpcore", "requests", "urllib3", "ssl", "socket", "h11")


def hf(module: str = "") -> Any:
    """huggingface_hub (or one of its modules), or an InputError saying how to install it."""
    try:
        return importlib.import_module("huggingface_hub" + (f".{module}" if module else ""))
    except ImportError:
        raise InputError(
            "reading a model from the Hub needs huggingface_hub: pip install huggingface_hub"
        ) from None


def _errors() -> Any:
    """huggingface_hub's error classes (huggingface_hub.errors from 0.24; utils before)."""
    try:
        return importlib.import_module("huggingface_hub.errors")
    except ImportError:
        return hf("utils")


@dataclass(frozen=True)
class Body:
    """The bytes of one GET (at most the limit asked), and what the headers said."""

    data: bytes
    status: int
    total: int | None  # the whole file's size, when the server says it
    requests: int = 1


def auth_headers() -> dict[str, str]:
    """huggingface_hub's headers: user agent and the token of HF_TOKEN / `hf auth login`."""
    return dict(hf("utils").build_hf_headers(library_name="servecheck"))


def has_token() -> bool:
    return bool(hf("utils").get_token())


def file_url(s: HubSettings, repo_id: str, filename: str, commit: str) -> str:
    return hf().hf_hub_url(repo_id, filename, revision=commit, endpoint=s.endpoint)


def get(
    s: HubSettings,
    url: str,
    *,
    headers: dict[str, str],
    start: int = 0,
    limit: int | None = None,
) -> Body:
    """GET `url` (bytes start..start+limit-1 when limit is given), reading at most `limit`
    bytes even when the server ignores the Range header and sends the whole file."""
    hdrs = dict(headers)
    if limit is not None:
        hdrs["Range"] = f"bytes={start}-{start + limit - 1}"
    with _stream(s, url, hdrs) as (resp, chunks):
        if resp.status_code == 416:  # the range starts past the end: an empty file
            return Body(b"", 416, _total(resp.headers, 416) or start)
        if resp.status_code >= 400:
            _read_error_body(resp)
            hf("utils").hf_raise_for_status(resp)
        # A server that ignores Range answers 200 with the whole file from byte 0: read only
        # up to the end of the range asked for, and drop what comes before it.
        ignored = resp.status_code == 200 and limit is not None
        data = _read_at_most(chunks, start + limit if ignored and limit is not None else limit)
        return Body(
            data[start:] if ignored else data,
            resp.status_code,
            _total(resp.headers, resp.status_code),
        )


@contextmanager
def _stream(s: HubSettings, url: str, headers: dict[str, str]) -> Iterator[tuple[Any, Iterator]]:
    utils = hf("utils")
    kwargs = {
        "headers": headers,
        "timeout": s.timeout,
        "max_retries": s.retries,
        "base_wait_time": s.retry_wait,
        "max_wait_time": 8,
        "retry_on_status_codes": RETRY_STATUS,
    }
    stream_backoff = getattr(utils, "http_stream_backoff", None)
    if stream_backoff is not None:  # huggingface_hub >= 1.0 (httpx)
        with stream_backoff("GET", url, **kwargs) as resp:
            yield resp, resp.iter_bytes()
        return
    resp = utils.http_backoff("GET", url, stream=True, **kwargs)  # requests
    try:
        yield resp, resp.iter_content(chunk_size=1 << 16)
    finally:
        resp.close()


def _read_error_body(resp: Any) -> None:
    read = getattr(resp, "read", None)
    if read is not None:
        # An error body is optional: the status and X-Error-Code headers say enough.
        with contextlib.suppress(Exception):
            read()


def _read_at_most(chunks: Iterator[bytes], limit: int | None) -> bytes:
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if limit is not None and len(out) >= limit:
            return bytes(out[:limit])
    return bytes(out)


def _total(headers: Any, status: int) -> int | None:
    """The whole file's size: Content-Range's total (206, 416), else Content-Length (200)."""
    cr = headers.get("Content-Range") or headers.get("content-range")
    if cr:
        m = _CONTENT_RANGE.match(cr.strip()) or re.match(r"^bytes \*/(\d+)$", cr.strip())
        if m and m.groups()[-1] != "*":
            return int(m.groups()[-1])
        return None
    if status == 200:
        length = headers.get("Content-Length") or headers.get("content-length")
        if length and length.isdigit():
            return int(length)
    return None


def is_network_error(exc: BaseException) -> bool:
    mod = type(exc).__module__.split(".")[0]
    return mod in _NETWORK_MODULES or isinstance(exc, (TimeoutError, ConnectionError))


def explain(exc: BaseException, s: HubSettings, repo_id: str, revision: str | None) -> str:
    """One sentence for an error from a Hub request."""
    errors = _errors()
    page = f"{s.endpoint}/{repo_id}"
    login = "set HF_TOKEN or run `hf auth login` (older clients: `huggingface-cli login`)"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, errors.GatedRepoError):
        if status == 403 or has_token():
            return (
                f"{repo_id} is gated and your token has no access to it yet: request access on "
                f"{page} and wait for it to be granted"
            )
        return (
            f"{repo_id} is gated: request access on {page}, then authenticate ({login}) so "
            "servecheck can read its config and headers"
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        auth = "" if has_token() else f"; if it is private, authenticate ({login})"
        return f"{repo_id} was not found on {s.endpoint}: check the model id{auth}"
    if isinstance(exc, errors.RevisionNotFoundError):
        return f"{repo_id} has no revision {revision!r} (expected a branch, a tag or a commit)"
    entry = getattr(errors, "RemoteEntryNotFoundError", None) or errors.EntryNotFoundError
    if isinstance(exc, entry):
        return f"{repo_id}: a file it lists is missing on the server ({_url_of(exc)})"
    if status is not None:
        return f"{repo_id}: the Hub answered HTTP {status} for {_url_of(exc)}"
    if is_network_error(exc):
        what = "timed out" if "timeout" in type(exc).__name__.lower() else "failed"
        return (
            f"cannot read {repo_id} from {s.endpoint}: the request {what} "
            f"({exc or type(exc).__name__}); check the network or HF_ENDPOINT, or use the "
            "cache with --offline"
        )
    return f"cannot read {repo_id} from {s.endpoint}: {exc}"


def _url_of(exc: BaseException) -> str:
    resp = getattr(exc, "response", None)
    return str(getattr(resp, "url", "")) or "a file"


def is_hub_error(exc: BaseException) -> bool:
    """True for errors a Hub request raises (HTTP statuses, network failures)."""
    errors = _errors()
    return isinstance(exc, errors.HfHubHTTPError) or is_network_error(exc)
