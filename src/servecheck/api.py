"""The library surface: check() and friends. The CLI is a thin layer over these."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servecheck.checks.audit import AuditResult, audit
from servecheck.checks.expected import module_tensors
from servecheck.checks.registry import Finding, Severity
from servecheck.checks.rules import checkpoint as ckpt_rules
from servecheck.hardware.env import resolve_env
from servecheck.hardware.plan_kernels import KernelReport, select_kernels
from servecheck.model.arch import build_inventory
from servecheck.model.config import ModelConfig, parse_config
from servecheck.model.family import Family, identify
from servecheck.model.inventory import Inventory
from servecheck.quant.resolve import ResolutionResult, resolve
from servecheck.quant.spec import QuantSpec, parse_quant
from servecheck.source.local import Checkpoint, open_local
from servecheck.source.safetensors import DTYPE_BITS
from servecheck.versions import VllmVersion, resolve_version


@dataclass(frozen=True)
class Target:
    """What the model will run on. capability None = unknown (no GPU named) or vLLM's CPU."""

    name: str
    kind: str  # "none", "gpu" or "cpu"
    capability: int | None = None
    memory_bytes: int | None = None
    count: int = 1


NO_TARGET = Target(name="unspecified", kind="none")


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
    plan: Any = None  # plan.Plan: memory and parallel layout on the target GPUs (plan/)

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


def check(
    model: str | Path,
    *,
    vllm_version: str | None = None,
    target: Target = NO_TARGET,
    kernel_env: Sequence[str] = (),
) -> CheckReport:
    """Run every check on a local checkpoint folder or config.json."""
    return check_checkpoint(
        open_local(model), vllm_version=vllm_version, target=target, kernel_env=kernel_env
    )


def check_checkpoint(
    ckpt: Checkpoint,
    *,
    vllm_version: str | None = None,
    target: Target = NO_TARGET,
    kernel_env: Sequence[str] = (),
) -> CheckReport:
    """Run every check on an opened checkpoint (e.g. one whose config was edited in memory)."""
    version = resolve_version(vllm_version)
    cfg = parse_config(ckpt.config)
    inventory = build_inventory(cfg, ckpt.tensors)
    quant = parse_quant(ckpt.config, ckpt.hf_quant_config, version)
    resolution = resolve(inventory, quant, version, target.capability)
    findings: list[Finding] = list(quant.problems) + list(resolution.findings)
    ver = version.effective
    result = None
    if ckpt.config_only:
        findings.append(ckpt_rules.ConfigOnly.make(ver=ver))
        module_bytes = estimated_bytes(inventory, resolution, cfg)
    else:
        result = audit(ckpt, cfg, inventory, resolution, version)
        findings += result.findings
        module_bytes = dict(result.module_bytes)
    if inventory.derived_from_tensors:
        findings.append(ckpt_rules.ArchitectureNotModelled.make(arch=cfg.architecture, ver=ver))
    kernels = select_kernels(
        inventory, resolution, target, version, resolve_env(ver, kernel_env), model=cfg, quant=quant
    )
    if kernels is not None:
        findings += kernels.findings
    notes = tuple(n for n in (version.note(), *inventory.notes) if n)
    findings.sort(key=lambda f: (f.severity.rank, f.code))
    report = CheckReport(
        location=ckpt.location,
        checkpoint=ckpt,
        version=version,
        target=target,
        model=cfg,
        family=identify(ckpt.config),
        inventory=inventory,
        quant=quant,
        resolution=resolution,
        audit=result,
        findings=tuple(findings),
        module_bytes=module_bytes,
        notes=notes,
        kernels=kernels,
    )
    from servecheck.plan import attach_plan

    return attach_plan(report)


def estimated_bytes(
    inv: Inventory, resolution: ResolutionResult, cfg: ModelConfig
) -> dict[str, int]:
    """Bytes per module computed from the tensors its scheme implies (config-only input)."""
    model_dtype = _SAFETENSORS_DTYPE.get(cfg.dtype or "bfloat16", "BF16")
    by_res = resolution.by_name()
    out: dict[str, int] = {}
    for m in inv.modules:
        total = 0
        for exp in module_tensors(m, by_res[m.name]):
            if exp.shape is None:
                continue
            if exp.dtypes is None or model_dtype in exp.dtypes:
                dtype = model_dtype
            else:
                dtype = sorted(exp.dtypes)[0]
            n = 1
            for d in exp.shape:
                n *= d
            total += (n * DTYPE_BITS[dtype] + 7) // 8
        if total:
            out[m.name] = total
    return out


_SAFETENSORS_DTYPE = {"bfloat16": "BF16", "float16": "F16", "float32": "F32", "half": "F16"}
