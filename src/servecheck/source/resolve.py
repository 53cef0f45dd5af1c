"""MODEL -> Checkpoint, for every command that takes a model: an existing local path, then the
Hugging Face cache, then the Hub (config and safetensors headers only, never weights)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from servecheck.errors import InputError
from servecheck.source.checkpoint import Checkpoint, Source
from servecheck.source.local import open_local
from servecheck.source.modelref import HF_SCHEME, HubRef, hub_ref, looks_like_path

if TYPE_CHECKING:  # the Hub readers are imported when a Hub model is opened
    from servecheck.source.hub import FetchProgress, HubRead


@dataclass(frozen=True)
class ReadOptions:
    """How Hub models are read when a call does not say: offline or not (None: as
    HF_HUB_OFFLINE says), and where header-fetch progress goes."""

    offline: bool | None = None
    progress: FetchProgress | None = None


_DEFAULT_OPTIONS = ReadOptions()
_OPTIONS: ContextVar[ReadOptions] = ContextVar("servecheck_read_options", default=_DEFAULT_OPTIONS)


@contextmanager
def reading(offline: bool | None = None, progress: FetchProgress | None = None) -> Iterator[None]:
    """Within the block, open_model reads Hub models with these options (the command line's
    --offline and its progress bar), whichever library call opens them."""
    token = _OPTIONS.set(ReadOptions(offline, progress))
    try:
        yield
    finally:
        _OPTIONS.reset(token)


def open_model(
    model: str | Path,
    *,
    revision: str | None = None,
    offline: bool | None = None,
    progress: FetchProgress | None = None,
) -> Checkpoint:
    """Open MODEL: a folder or config.json, `org/name[@revision]` or `hf://org/name[@revision]`.

    `offline` (default: HF_HUB_OFFLINE) uses only the HF cache and servecheck's header cache.
    The Checkpoint's `source` says where the files came from and the commit they are at."""
    text = str(model)
    if "\x00" in text:
        raise InputError(f"{text!r} contains a NUL byte; no file or Hub model has one")
    if not text.startswith(HF_SCHEME) and looks_like_path(text):
        if revision:
            raise InputError(f"--revision applies to Hub models; {text} is a local path")
        return open_local(model)
    ref = hub_ref(text, revision)
    if ref is None:
        raise InputError(f"no such file or folder: {text} (a Hub model is named org/name)")
    defaults = _OPTIONS.get()
    return read_hub_model(
        ref,
        offline=defaults.offline if offline is None else offline,
        progress=progress or defaults.progress,
    ).checkpoint


def read_hub_model(
    ref: HubRef, *, offline: bool | None = None, progress: FetchProgress | None = None
) -> HubRead:
    """A Hub model from the HF cache when a complete snapshot is there, else from the Hub."""
    from servecheck.source.hfcache import complete_snapshot
    from servecheck.source.hfenv import settings
    from servecheck.source.hub import FetchStats, HubRead, open_hub

    s = settings(offline)
    snap = complete_snapshot(s.hub_cache, ref)
    if snap is not None:
        folder, commit = snap
        source = Source(
            kind="hf-cache",
            path=str(folder),
            repo_id=ref.repo_id,
            revision=ref.revision,
            commit=commit,
            config_file=folder / "config.json",
            offline=True,
        )
        ckpt = replace(open_local(folder, source), location=ref.repo_id)
        return HubRead(ckpt, FetchStats())
    return open_hub(ref, s, progress)
