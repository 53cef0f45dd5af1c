"""Find a model in the local Hugging Face cache (the layout huggingface_hub writes):
`<cache>/models--org--name/refs/<revision>` holds a commit sha and
`<cache>/models--org--name/snapshots/<sha>/` the files, as links into `blobs/`."""

from __future__ import annotations

import json
from pathlib import Path

from servecheck.source.checkpoint import INDEX_NAME
from servecheck.source.hfenv import DEFAULT_REVISION, repo_folder
from servecheck.source.modelref import HubRef, is_commit


def cached_commit(hub_cache: Path, ref: HubRef) -> str | None:
    """The commit sha the HF cache records for ref's revision, or None."""
    rev = ref.revision or DEFAULT_REVISION
    if is_commit(rev):
        return rev
    path = hub_cache / repo_folder(ref.repo_id) / "refs" / rev
    try:
        sha = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return sha if is_commit(sha) else None


def complete_snapshot(hub_cache: Path, ref: HubRef) -> tuple[Path, str] | None:
    """(snapshot folder, commit) when the HF cache holds ref's config.json and every
    safetensors file it needs (all the index names, or a model.safetensors), else None.

    A snapshot with only some files (a download in progress, or just the config) is not
    used: the Hub headers give the whole answer."""
    sha = cached_commit(hub_cache, ref)
    if sha is None:
        return None
    snap = hub_cache / repo_folder(ref.repo_id) / "snapshots" / sha
    if not (snap / "config.json").is_file():
        return None
    index = snap / INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
            names = set(weight_map.values())
        except (OSError, ValueError, AttributeError, TypeError, RecursionError):
            return None  # an unreadable index: the Hub's headers are read instead
        if names and all((snap / str(n)).is_file() for n in names):
            return snap, sha
        return None
    if (snap / "model.safetensors").is_file():
        return snap, sha
    return None
