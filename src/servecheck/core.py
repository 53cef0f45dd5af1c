"""Shared types every layer may use: the target, the check report, the order of module kinds.

A leaf: it imports no stage at run time (stage types appear in annotations only), so the
stages, the library surface and the renderers can all share these without import circles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from servecheck.findings.registry import Finding, Severity

if TYPE_CHECKING:
    from servecheck.checks.audit import AuditResult
    from servecheck.fix import FixProposal
    from servecheck.hardware.plan_kernels import KernelReport
    from servecheck.model.config import ModelConfig
    from servecheck.model.family import Family
    from servecheck.model.inventory import Inventory
    from servecheck.plan.planner import Plan
    from servecheck.quant.resolve import ResolutionResult
    from servecheck.quant.spec import QuantSpec
    from servecheck.source.local import Checkpoint
    from servecheck.versions import VllmVersion


@dataclass(frozen=True)
class Target:
    """What the model will run on. capability None = unknown (no GPU named) or vLLM's CPU."""

    name: str
    kind: str  # "none", "gpu" or "cpu"
    capability: int | None = None
    memory_bytes: int | None = None
    count: int = 1


NO_TARGET = Target(name="unspecified", kind="none")

# The order in which reports list module kinds (a decoder layer from input to output).
KIND_ORDER = (
    "embedding",
    "attn.qkv_proj",
    "attn.mla_a_proj",
    "attn.mla_q_proj",
    "attn.mla_kv_b_proj",
    "attn.o_proj",
    "attn.kv_cache",
    "mlp.gate_up_proj",
    "mlp.down_proj",
    "moe.router",
    "moe.shared.gate_up_proj",
    "moe.shared.down_proj",
    "moe.experts",
    "mtp.eh_proj",
    "norm",
    "lm_head",
    "other",
)


def kind_rank(kind: str) -> int:
    """Position of a module kind in KIND_ORDER (unknown kinds last)."""
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


@dataclass(frozen=True)
class CheckReport:
    """Everything `servecheck check` found, ready to render."""

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
    plan: Plan | None = None  # memory and parallel layout on the target GPUs (plan/)
    # A verified ignore-list fix (api.check(..., propose_fix=True)), or why there is none.
    fix: FixProposal | None = None
    fix_unavailable: str | None = None

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
