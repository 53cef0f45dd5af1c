"""What kernel selection produced for a checkpoint on a target: each module's kernel or MoE
backend, the attention backend, and the findings (the same types for GPUs and vLLM's CPU)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from servecheck.core import kind_rank
from servecheck.findings.registry import Finding
from servecheck.hardware.attention import AttentionChoice
from servecheck.hardware.conditions import Device
from servecheck.hardware.env import KernelEnv
from servecheck.hardware.kernels import STAGE_TEXT, KernelChoice
from servecheck.quant.resolve import Resolution
from servecheck.versions import Release

# Schemes whose activations are quantized: a weight-only kernel for them is a degraded path.
ACT_QUANT_SCHEMES = frozenset({"W8A8Fp8", "Fp8", "W4A4Fp4", "W4A4Mxfp4", "W8A8Int8", "W4A8Fp8"})


@dataclass(frozen=True)
class ModuleKernel:
    """The kernel (or MoE backend) of one module."""

    name: str
    kind: str
    scheme: str | None
    min_capability: int | None
    choice: KernelChoice
    act_quant: bool = False  # the checkpoint quantizes this module's activations

    @property
    def degraded(self) -> bool:
        """A weight-only kernel although the checkpoint quantizes activations."""
        return self.choice.ok and self.choice.weight_only and self.act_quant

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, **self.choice.as_dict()}


@dataclass(frozen=True)
class KindKernels:
    """One row of the capability table: a module kind on the target."""

    kind: str
    count: int
    schemes: dict[str, int]
    min_capability: int | None
    capability_ok: bool | None  # None: no minimum / no GPU capability
    kernels: dict[str, int]  # label -> modules
    status: str  # "ok", "degraded", "fail", "n/a"
    errors: tuple[str, ...] = ()

    def kernels_text(self) -> str:
        if not self.kernels:
            return "-"
        if len(self.kernels) == 1:
            return next(iter(self.kernels))
        return ", ".join(f"{k} ×{v}" for k, v in sorted(self.kernels.items(), key=lambda x: -x[1]))


@dataclass(frozen=True)
class KernelReport:
    """Per-module kernel choices on one target, the attention backend, and the findings."""

    target_name: str
    device: Device
    version: Release
    env: KernelEnv
    modules: tuple[ModuleKernel, ...] = ()
    attention: AttentionChoice | None = None
    attention_fp8: AttentionChoice | None = None
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()

    @cached_property
    def _index(self) -> dict[str, ModuleKernel]:
        return {m.name: m for m in self.modules}

    def by_name(self) -> dict[str, ModuleKernel]:
        return self._index

    def first_error(self) -> ModuleKernel | None:
        """The module whose kernel error vLLM hits first: layer construction runs in module
        order before any weight is loaded; load-time errors (process_weights_after_loading)
        come after."""
        for stage in STAGE_TEXT:
            for m in self.modules:
                if m.choice.error and m.choice.stage == stage:
                    return m
        return None

    def kinds(self) -> list[KindKernels]:
        groups: dict[str, list[ModuleKernel]] = {}
        for m in self.modules:
            groups.setdefault(m.kind, []).append(m)
        rows = []
        for kind in sorted(groups, key=kind_rank):
            ms = groups[kind]
            caps = [m.min_capability for m in ms if m.min_capability is not None]
            need = max(caps) if caps else None
            have = self.device.capability
            cap_ok = None if need is None or have is None else have >= need
            kernels = Counter(
                m.choice.label
                if m.choice.ok
                else "✗ " + (m.choice.error_type or "error") + STAGE_TEXT[m.choice.stage]
                for m in ms
            )
            errors = tuple(dict.fromkeys(m.choice.error for m in ms if m.choice.error))
            if errors or cap_ok is False:
                status = "fail"
            elif any(m.degraded for m in ms):
                status = "degraded"
            elif not any(m.choice.modelled for m in ms):
                status = "n/a"
            else:
                status = "ok"
            rows.append(
                KindKernels(
                    kind=kind,
                    count=len(ms),
                    schemes=dict(Counter(m.scheme or "unquantized" for m in ms)),
                    min_capability=need,
                    capability_ok=cap_ok,
                    kernels=dict(kernels),
                    status=status,
                    errors=errors,
                )
            )
        return rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target_name,
            "platform": self.device.kind,
            "capability": self.device.capability,
            "sm": self.device.sm,
            "vllm_version": str(self.version),
            "environment": self.env.as_dict(),
            "attention": self.attention.as_dict() if self.attention else None,
            "attention_fp8_kv": self.attention_fp8.as_dict() if self.attention_fp8 else None,
            "kinds": [
                {
                    "kind": k.kind,
                    "count": k.count,
                    "schemes": k.schemes,
                    "min_capability": k.min_capability,
                    "capability_ok": k.capability_ok,
                    "kernels": k.kernels,
                    "status": k.status,
                    "errors": list(k.errors),
                }
                for k in self.kinds()
            ],
            "notes": list(self.notes),
        }


def module_kernel(
    res: Resolution, choice: KernelChoice, min_capability: int | None
) -> ModuleKernel:
    return ModuleKernel(
        name=res.module.name,
        kind=res.module.kind,
        scheme=res.scheme,
        min_capability=min_capability,
        choice=choice,
        act_quant=res.inputs is not None or res.scheme == "Fp8",
    )
