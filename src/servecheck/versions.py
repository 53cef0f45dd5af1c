"""vLLM releases: which release's behaviour to mirror, and the behaviour that changed between them.

Every version-keyed value in ``knowledge/`` says from which release it holds
(``from."0.24.0" = ...``): a release takes the value of the latest key at or below it, so a
release added to ``vllm_releases.toml`` inherits the newest values until a row says otherwise.
Releases compare as numbers (``Release``), never as strings. ``checked_through`` in
vllm_versions.toml names the newest release the hand-kept tables were checked against: the
default, and the release later known releases are flagged as inheriting from (V003).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from servecheck.errors import InputError
from servecheck.findings.registry import Finding
from servecheck.findings.rules import version as vrules
from servecheck.knowledge import load_toml

T = TypeVar("T")


@dataclass(frozen=True, order=True)
class Release:
    """A vLLM release number: (0, 10, 1, 1) < (0, 11, 0) < (0, 33, 0)."""

    parts: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> Release:
        """'0.33.0' -> Release((0, 33, 0)); tolerates '0.11.1rc4', '0.10.2+cu128', 'v0.24'."""
        return _parse_release(str(text)) if cls is Release else cls._parse(text)

    @classmethod
    def _parse(cls, text: str) -> Release:
        if len(str(text)) > 64:
            raise InputError(f"not a vLLM version: {str(text)[:40]!r}... (expected e.g. 0.33.0)")
        parts: list[int] = []
        for piece in str(text).strip().lstrip("v").split("+")[0].split(".")[:4]:
            digits = ""
            for ch in piece:
                if not ch.isdigit():
                    break
                digits += ch
            if not digits:
                break
            parts.append(int(digits))
            if len(digits) < len(piece):  # '1rc4': a pre-release of 1
                break
        if not parts:
            raise InputError(f"not a vLLM version: {text!r} (expected something like 0.33.0)")
        while len(parts) < 3:
            parts.append(0)
        while len(parts) > 3 and parts[-1] == 0:
            parts.pop()
        return cls(tuple(parts))

    def __str__(self) -> str:
        return ".".join(str(p) for p in self.parts)


@functools.lru_cache(maxsize=1024)
def _parse_release(text: str) -> Release:
    # The version tables are read per layout and module: parsing their keys once each
    # makes planning for 256 GPUs twice as fast.
    return Release._parse(text)


def in_effect(rows: Mapping[str, T], release: Release, default: T | None = None) -> T:
    """The value of the latest key (a release) at or below ``release``; ``default`` (when
    given) where every key is later."""
    best: tuple[Release, T] | None = None
    for key, value in rows.items():
        start = Release.parse(key)
        if start <= release and (best is None or start > best[0]):
            best = (start, value)
    if best is None and default is not None:
        return default
    if best is None:
        first = min((Release.parse(k) for k in rows), default=None)
        raise LookupError(f"no row holds for vLLM {release} (the first starts at {first})")
    return best[1]


@functools.cache
def _features() -> dict[str, Any]:
    return load_toml("vllm_versions.toml")["features"]


@functools.cache
def checked_through() -> Release:
    """The newest release the hand-kept tables were checked against (the default release)."""
    return Release.parse(load_toml("vllm_versions.toml")["checked_through"])


@functools.cache
def known_releases() -> tuple[Release, ...]:
    """Every published vLLM release servecheck models, oldest first (vllm_releases.toml)."""
    return tuple(sorted(Release.parse(r) for r in load_toml("vllm_releases.toml")["releases"]))


def feature_names() -> list[str]:
    return sorted(_features())


def feature(release: Release, name: str) -> Any:
    """The value of one knowledge/vllm_versions.toml feature for ``release``."""
    return in_effect(_features()[name]["from"], release)


@dataclass(frozen=True)
class VllmVersion:
    """The vLLM release to mirror: what was asked for, and the known release standing in for it.

    ``standing``: "known" (a release servecheck models), "unchecked" (a known release after
    ``checked_through``: its extracted tables are its own, the hand-kept ones inherited),
    "unlisted" (between known releases, e.g. a pre-release or a build from source: the latest
    known release at or below it is mirrored), "older" (before the first release modelled) or
    "newer" (after the newest).
    """

    requested: str
    release: Release
    source: str  # "flag", "installed" or "default"
    standing: str = "known"

    @property
    def effective(self) -> str:
        """The mirrored release as text, e.g. "0.33.0" (for messages and JSON)."""
        return str(self.release)

    @property
    def wanted(self) -> Release:
        """The release asked for (tables with their own ranges, e.g. memory eras, use it)."""
        return Release.parse(self.requested)

    @property
    def exact(self) -> bool:
        """The release asked for is the one mirrored (checked or not)."""
        return self.standing in ("known", "unchecked")

    def feature(self, name: str) -> Any:
        return feature(self.release, name)

    def at_least(self, text: str) -> bool:
        """The mirrored release is ``text`` or later."""
        return self.release >= Release.parse(text)

    def note(self) -> str | None:
        if self.standing != "unlisted":
            return None
        return (
            f"vLLM {self.requested} is not a published release; mirroring the latest release "
            f"at or below it, {self.effective}"
        )

    def findings(self) -> list[Finding]:
        """A warning when the release is outside the range servecheck models."""
        known = known_releases()
        if self.standing == "older":
            return [
                vrules.ReleaseTooOld.make(
                    requested=self.requested, first=str(known[0]), ver=self.effective
                )
            ]
        if self.standing == "unchecked":
            return [
                vrules.ReleaseNotChecked.make(
                    requested=self.requested, checked=str(checked_through()), ver=self.effective
                )
            ]
        if self.standing == "newer":
            return [
                vrules.ReleaseTooNew.make(
                    requested=self.requested, newest=str(known[-1]), ver=self.effective
                )
            ]
        return []


def resolve_version(requested: str | None, installed: str | None = None) -> VllmVersion:
    """Pick the release to mirror: the flag, else the installed vllm, else the newest checked
    release."""
    known = known_releases()
    source = "flag"
    if requested is None:
        requested, source = installed, "installed"
    if requested is None:
        requested, source = str(checked_through()), "default"
    wanted = Release.parse(requested)
    if wanted < known[0]:
        return VllmVersion(requested, known[0], source, "older")
    if wanted > known[-1]:
        return VllmVersion(requested, known[-1], source, "newer")
    release = max(r for r in known if r <= wanted)
    if release != wanted:
        return VllmVersion(requested, release, source, "unlisted")
    standing = "unchecked" if release > checked_through() else "known"
    return VllmVersion(requested, release, source, standing)
