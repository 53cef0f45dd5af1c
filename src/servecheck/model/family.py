"""Recognise well-known model families from config.json fingerprints (knowledge/families.toml)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from servecheck.knowledge import load_toml
from servecheck.model.config import text_config


@dataclass(frozen=True)
class Family:
    name: str
    match: dict
    source: str


@functools.cache
def families() -> tuple[Family, ...]:
    return tuple(
        Family(f["name"], dict(f["match"]), f["source"])
        for f in load_toml("families.toml")["family"]
    )


def identify(config: dict) -> Family | None:
    """The first family whose every fingerprint key equals the config's value, or None."""
    cfg = text_config(config)
    for fam in families():
        if all(cfg.get(k) == v for k, v in fam.match.items()):
            return fam
    return None
