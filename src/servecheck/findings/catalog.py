"""Every finding code servecheck knows: the rule modules, imported once."""

from __future__ import annotations

from servecheck.findings import rules  # noqa: F401  (importing the modules registers them)
from servecheck.findings.registry import RULES, Rule


def all_rules() -> dict[str, type[Rule]]:
    """Every registered rule, by code."""
    return dict(sorted(RULES.items()))
