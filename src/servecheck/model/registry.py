"""vLLM's model registry per release (knowledge/vllm_registry.toml, extracted from the wheels).

Answers, for an architecture name and a vLLM release: does that release serve it, with which
model class (its own implementation or the Transformers backend), and if not, what vLLM says
(vLLM model_executor/models/registry.py _raise_for_unsupported) and from which release it works.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from servecheck.knowledge import load_toml
from servecheck.versions import Release


@dataclass(frozen=True)
class Span:
    """A run of releases in which vLLM maps the architecture to the same class."""

    first: str
    last: str
    module: str  # vLLM's model file (model_executor/models/<module>.py) or a dotted path
    cls: str
    category: str  # text, multimodal, pooling, speculative, transformers-backend

    def holds(self, key: Release) -> bool:
        return Release.parse(self.first) <= key <= Release.parse(self.last)

    @property
    def transformers_backend(self) -> bool:
        return self.module == "transformers"


@dataclass(frozen=True)
class Lookup:
    """What one release does with one architecture name."""

    architecture: str
    release: str
    span: Span | None  # the class serving it in this release, None when unsupported
    spans: tuple[Span, ...]  # every release range that knows it
    removed_after: str | None = None  # vLLM's "supported in vLLM until vX" release
    plugin: str | None = None  # vLLM's out-of-tree plugin URL

    @property
    def supported(self) -> bool:
        return self.span is not None

    @property
    def later(self) -> Span | None:
        """The first span after the requested release (the architecture was added later)."""
        key = Release.parse(self.release)
        return next((s for s in self.spans if Release.parse(s.first) > key), None)

    @property
    def earlier(self) -> Span | None:
        """The last span before the requested release (removed or renamed since)."""
        key = Release.parse(self.release)
        before = [s for s in self.spans if Release.parse(s.last) < key]
        return before[-1] if before else None

    @property
    def multimodal(self) -> bool:
        span = self.span or self.later or self.earlier
        return bool(span and span.category == "multimodal")


@functools.cache
def _data() -> dict[str, Any]:
    return load_toml("vllm_registry.toml")


def known_releases() -> tuple[str, ...]:
    return tuple(_data()["releases"])


@functools.cache
def _spans(architecture: str) -> tuple[Span, ...]:
    return tuple(Span(*row) for row in _data()["arch"].get(architecture, ()))


def lookup(architecture: str, release: str) -> Lookup:
    """The registry's answer for `architecture` in vLLM `release` (any version string)."""
    key = Release.parse(release)
    spans = _spans(architecture)
    span = next((s for s in spans if s.holds(key)), None)
    if span is None and spans and key > Release.parse(known_releases()[-1]):
        # A release newer than any extracted: the newest known entry stands in for it.
        span = spans[-1] if spans[-1].last == known_releases()[-1] else None
    removed = _data()["removed"].get(architecture)
    plugin = _data()["plugin"].get(architecture)
    return Lookup(
        architecture=architecture,
        release=release,
        span=span,
        spans=spans,
        removed_after=removed[1] if removed and key >= Release.parse(removed[0]) else None,
        plugin=plugin[1] if plugin and key >= Release.parse(plugin[0]) else None,
    )


def supported_count(release: str) -> int:
    """How many architecture names the release's registry knows."""
    key = Release.parse(release)
    return sum(1 for rows in _data()["arch"].values() if any(Span(*r).holds(key) for r in rows))
