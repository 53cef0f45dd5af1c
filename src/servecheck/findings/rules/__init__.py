"""Every finding code servecheck knows: importing this package registers every rule."""

from __future__ import annotations

from servecheck.findings.registry import RULES, Rule
from servecheck.findings.rules import (  # noqa: F401  (importing the modules registers them)
    architecture,
    checkpoint,
    dtype,
    formats,
    hardware,
    memory,
    parallel,
    quant_config,
    quant_methods,
    resolution,
    version,
    wna16,
)


def all_rules() -> dict[str, type[Rule]]:
    """Every registered rule, by code."""
    return dict(sorted(RULES.items()))
