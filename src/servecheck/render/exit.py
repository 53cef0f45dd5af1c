"""The one mapping from outcomes to exit codes, shared by every command (README: Exit codes).

0 = no error findings; 1 = error findings, or nothing found where something was asked for
(`gpus --detect` without a GPU, `explain` with no known signature); 2 = bad input or usage
(cli.py returns it for argparse errors and InputError).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from servecheck.findings.registry import Finding

OK = 0
PROBLEMS = 1
BAD_INPUT = 2


def for_verdict(verdict: str) -> int:
    """'fail' (an error finding) is 1; 'ok' and 'warn' are 0."""
    return PROBLEMS if verdict == "fail" else OK


def for_findings(findings: Iterable[Finding]) -> int:
    return PROBLEMS if any(f.severity.value == "error" for f in findings) else OK


def found(something: bool) -> int:
    return OK if something else PROBLEMS
