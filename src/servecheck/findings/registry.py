"""Findings and the rule registry.

Each finding code is one small Rule subclass (like a ruff rule): its docstring is the
documentation `servecheck rules CODE` prints, its `message` and `fix` are format strings
filled from the finding's fields. Codes are stable: never renumber, only add.
"""

from __future__ import annotations

import inspect
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "info": 2}[self.value]


@dataclass(frozen=True)
class Finding:
    """One thing servecheck found, with the evidence and the fix."""

    code: str
    name: str
    severity: Severity
    message: str
    fix: str
    vllm_ref: str
    # The exact text vLLM raises or logs for this, when it does, and the exception class.
    vllm_message: str | None = None
    exception: str | None = None
    # Modules or tensors involved (possibly truncated; `count` says how many in all).
    subjects: tuple[str, ...] = ()
    count: int = 1
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "message": self.message,
            "fix": self.fix,
            "vllm_ref": self.vllm_ref,
            "vllm_message": self.vllm_message,
            "exception": self.exception,
            "subjects": list(self.subjects),
            "count": self.count,
            "evidence": dict(self.evidence),
        }


class Rule:
    """Base class: subclasses set the class variables and document themselves."""

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity]
    message: ClassVar[str]
    fix: ClassVar[str]
    vllm_ref: ClassVar[str]
    vllm_message: ClassVar[str | None] = None
    # The exception class vLLM raises (None: it only logs, or nothing is raised).
    exception: ClassVar[str | None] = None

    @classmethod
    def doc(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def summary(cls) -> str:
        return cls.doc().split("\n", 1)[0]

    @classmethod
    def make(
        cls,
        subjects: tuple[str, ...] | list[str] = (),
        *,
        count: int | None = None,
        severity: Severity | None = None,
        evidence: Mapping[str, Any] | None = None,
        exception: str | None = None,
        **fields: Any,
    ) -> Finding:
        """Build a finding, formatting message, fix and vLLM's message from `fields`."""
        subjects = tuple(subjects)
        return Finding(
            code=cls.code,
            name=cls.name,
            severity=severity or cls.severity,
            message=_fill(cls.message, fields),
            fix=_fill(cls.fix, fields),
            vllm_ref=_fill(cls.vllm_ref, fields),
            # An empty filled message means vLLM raises nothing here.
            vllm_message=(_fill(cls.vllm_message, fields) or None) if cls.vllm_message else None,
            # Only errors raise in vLLM; warnings and infos carry no exception class.
            exception=(exception or cls.exception)
            if (severity or cls.severity) == Severity.ERROR
            else None,
            subjects=subjects[:20],
            count=count if count is not None else max(len(subjects), 1),
            evidence=dict(evidence or {}),
        )


RULES: dict[str, type[Rule]] = {}


def rule(cls: type[Rule]) -> type[Rule]:
    """Class decorator registering a rule under its code."""
    for attr in ("code", "name", "severity", "message", "fix", "vllm_ref"):
        if not hasattr(cls, attr):
            raise TypeError(f"rule {cls.__name__} lacks {attr}")
    if cls.code in RULES:
        raise ValueError(f"duplicate rule code {cls.code}")
    if not cls.__doc__:
        raise TypeError(f"rule {cls.code} has no documentation")
    RULES[cls.code] = cls
    return cls


def _fill(template: str, fields: Mapping[str, Any]) -> str:
    names = {n for _, n, _, _ in string.Formatter().parse(template) if n}
    missing = names - set(fields)
    if missing:
        raise KeyError(f"finding template needs {sorted(missing)}")
    return _WORDS.format(template, **fields)


class _Words(string.Formatter):
    """Templates say a count's words for one and for many: `{n} {n:tensor is|tensors are}`."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if "|" not in format_spec:
            return super().format_field(value, format_spec)
        one, many = format_spec.split("|", 1)
        return one if str(value).replace(",", "") == "1" else many


_WORDS = _Words()
