"""Group per-module problems into one finding per kind, with a count and examples."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from servecheck.findings.registry import Finding, Rule


@dataclass
class _Group:
    rule: type[Rule]
    fields: dict[str, Any]
    subjects: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)


class Collector:
    """Accumulates (rule, subject, fields); identical (rule, key) pairs merge into one finding."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, Any], _Group] = {}

    def add(self, rule: type[Rule], subject: str, key: Any = None, **fields: Any) -> None:
        """Record one subject; `fields` fill the rule's templates (and may set `exception`)."""
        group = self._groups.get((rule.code, key))
        if group is None:
            group = self._groups[(rule.code, key)] = _Group(rule, fields)
        if subject not in group.seen:  # several tensors of one module count once
            group.seen.add(subject)
            group.subjects.append(subject)

    def findings(self, extra: Callable[[_Group], dict[str, Any]] | None = None) -> list[Finding]:
        out = []
        for group in self._groups.values():
            n = len(group.subjects)
            fields = dict(group.fields)
            fields.setdefault("n", n)
            fields.setdefault("example", group.subjects[0])
            if "module" in fields and n > 1:
                fields["module"] = f"{group.subjects[0]} (and {n - 1} more)"
            if extra:
                fields.update(extra(group))
            out.append(group.rule.make(group.subjects, count=n, **fields))
        return out


def unique(findings: Iterable[Finding]) -> list[Finding]:
    """Each finding once (same code and message), in order."""
    first: dict[tuple[str, str], Finding] = {}
    for f in findings:
        first.setdefault((f.code, f.message), f)
    return list(first.values())
