"""The report of `servecheck check`: the check result with what the library surface computed
from it (the memory plan, the proposed fix), ready to render."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from servecheck.check_result import CheckResult

if TYPE_CHECKING:  # annotations only: a report is built without importing fix or plan
    from servecheck.fix import FixProposal
    from servecheck.launch import Launch
    from servecheck.plan import Plan


@dataclass(frozen=True)
class CheckReport(CheckResult):
    """A CheckResult with the plan for its target and, when asked for, a verified fix."""

    plan: Plan | None = None  # memory and parallel layout on the target GPUs (plan/)
    # A verified ignore-list fix (api.check(..., propose_fix=True)), or why there is none.
    fix: FixProposal | None = None
    fix_unavailable: str | None = None
    # The `vllm serve` launch the prediction is for, when one was given (check -- ARGS).
    launch: Launch | None = None
