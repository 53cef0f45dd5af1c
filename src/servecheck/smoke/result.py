"""SmokeResult: the prediction, the run, the comparison, and the explanation of a failure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servecheck.check_result import CheckResult
from servecheck.findings.registry import Finding
from servecheck.smoke.compare import Comparison
from servecheck.smoke.runner import ChildRun, VllmInstall

EXIT_GENERATED = 0
EXIT_NO_TEXT = 1
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class RootCause:
    """What `explain` makes of the log of a failed run, and the finding that predicted it."""

    root_line: str | None  # vLLM's root error line
    title: str | None  # the known failure it matched, if any
    cause: str | None
    fix: str | None
    predicted_by: Finding | None  # the finding of the prediction that names this failure
    signature: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "root_error": self.root_line,
            "signature": self.signature,
            "title": self.title,
            "cause": self.cause,
            "fix": self.fix,
            "predicted_by": self.predicted_by.code if self.predicted_by else None,
        }


@dataclass(frozen=True)
class SmokeResult:
    report: CheckResult  # the prediction, for the vLLM release that ran
    install: VllmInstall
    command: str  # the `vllm serve` command the run stands for
    run: ChildRun
    comparison: Comparison
    root_cause: RootCause | None = None
    record_path: Path | None = None
    timeout_s: float = 0
    # the prediction for the run's settings (memory and context planned for the arguments as
    # vLLM read them); the report's findings where no plan applies
    findings: tuple[Finding, ...] = ()

    @property
    def exit_code(self) -> int:
        """0 only when vLLM generated text; 130 when interrupted; else 1."""
        if self.run.outcome == "interrupted":
            return EXIT_INTERRUPTED
        return EXIT_GENERATED if self.run.generated else EXIT_NO_TEXT

    def as_dict(self) -> dict[str, Any]:
        run = self.run
        generated = run.result.get("generated") or {}
        return {
            "model": self.report.location,
            "vllm": {"python": self.install.python, "version": self.install.version},
            "command": self.command,
            "prediction": {
                "verdict": _verdict(self.findings or self.report.findings),
                "target": self.report.target.name,
                "vllm_version": self.report.version.effective,
                "findings": [f.as_dict() for f in self.findings or self.report.findings],
            },
            "run": {
                "outcome": run.outcome,
                "exit_code": run.exit_code,
                "wall_s": run.wall_s,
                "timeout_s": self.timeout_s,
                "log": str(run.log_path),
                "generated": generated.get("text"),
                "generated_tokens": len(generated.get("token_ids") or []),
                "error": run.error,
                "root_error_line": run.parsed.get("root_error_line"),
                "not_applied": run.args_info.get("not_applied") or [],
                "effective": run.result.get("effective"),
            },
            "comparison": self.comparison.as_dict(),
            "root_cause": self.root_cause.as_dict() if self.root_cause else None,
            "record": str(self.record_path) if self.record_path else None,
        }


def _verdict(findings: tuple[Finding, ...]) -> str:
    levels = {f.severity.value for f in findings}
    return "fail" if "error" in levels else "warn" if "warning" in levels else "ok"
