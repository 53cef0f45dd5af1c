"""What the check stages found for one checkpoint on one target: the input of planning, fixing
and comparing.

source -> model -> quant -> checks (audit) -> hardware (kernels) each add their part; the
library surface (api.py) assembles them here. The plan and the proposed fix, which are computed
from a CheckResult, are attached by the library surface in report.CheckReport.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from servecheck.checks.audit import AuditResult
from servecheck.core import Target
from servecheck.findings.registry import Finding, Severity
from servecheck.model.config import ModelConfig
from servecheck.model.family import Family
from servecheck.model.inventory import Inventory
from servecheck.quant.resolution import ResolutionResult
from servecheck.quant.spec import QuantSpec
from servecheck.source.checkpoint import Checkpoint
from servecheck.versions import VllmVersion

if TYPE_CHECKING:  # the kernel stage runs only with a target
    from servecheck.hardware.kernel_report import KernelReport


@dataclass(frozen=True)
class CheckResult:
    """Everything the checks found: the model as vLLM builds it, each module's resolution, the
    audit of the stored tensors, the kernels on the target, and the findings."""

    location: str
    checkpoint: Checkpoint
    version: VllmVersion
    target: Target
    model: ModelConfig
    family: Family | None
    inventory: Inventory
    quant: QuantSpec
    resolution: ResolutionResult
    audit: AuditResult | None
    findings: tuple[Finding, ...]
    module_bytes: Mapping[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    kernels: KernelReport | None = None  # kernel per module on the target (hardware/)

    @property
    def verdict(self) -> str:
        severities = {f.severity for f in self.findings}
        if Severity.ERROR in severities:
            return "fail"
        if Severity.WARNING in severities:
            return "warn"
        return "ok"

    @property
    def total_bytes(self) -> int:
        return sum(self.module_bytes.values())
