"""Vision and audio towers and their projectors, as vLLM builds them beside the language model.

A record's `towers` list holds one table per tower: its vLLM prefix, the template of its
blocks, and the config keys of its sizes. Each template mirrors one vLLM encoder file.
"""

from __future__ import annotations

from servecheck.model.config import ModelConfig
from servecheck.model.inventory import Module
from servecheck.model.records import Record


def tower_modules(record: Record, cfg: ModelConfig) -> list[Module]:
    """The modules of the record's towers (none for text-only records)."""
    return []
