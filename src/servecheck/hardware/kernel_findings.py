"""Findings shared by the GPU and CPU kernel selections: no kernel, not modelled, no attention
backend."""

from __future__ import annotations

from servecheck.findings.collect import Collector
from servecheck.findings.registry import Finding
from servecheck.findings.rules import hardware as rules
from servecheck.hardware.attention import AttentionChoice
from servecheck.hardware.kernel_report import ModuleKernel
from servecheck.model.inventory import EXPERTS
from servecheck.versions import Release


def add_no_kernel(
    col: Collector, m: ModuleKernel, target: str, reasons: str, function: str, ver: Release
) -> None:
    """NoMoeBackend (``*_moe`` families) or NoLinearKernel for ``m``, on a GPU or the CPU."""
    c = m.choice
    if c.family.endswith("_moe"):
        rule, named = rules.NoMoeBackend, {"oracle": c.family.removesuffix("_moe") + ".py"}
    else:
        rule, named = rules.NoLinearKernel, {"function": function}
    col.add(
        rule,
        m.name,
        key=(c.family, c.error),
        module=m.name,
        scheme=m.scheme or "unquantized",
        target=target,
        reasons=reasons,
        vllm_text=c.error,
        exception=c.error_type,
        ver=ver,
        **named,
    )


def add_not_modelled(col: Collector, m: ModuleKernel, target: str, ver: Release) -> None:
    """H009: never a silent OK where the kernel or backend for a module is not modelled."""
    c = m.choice
    what = "MoE layers" if m.kind == EXPERTS else "linear layers"
    col.add(
        rules.KernelNotModelled,
        m.name,
        key=(c.family, m.scheme),
        what=what,
        target=target,
        scheme=m.scheme or "unquantized",
        source=c.source or "model_executor/layers/quantization",
        ver=ver,
    )


def attention_findings(
    attention: AttentionChoice | None, target: str, ver: Release
) -> list[Finding]:
    """NoAttentionBackend when the KV-cache dtype has no attention backend (GPU or CPU)."""
    if attention is None or not attention.error:
        return []
    finding = rules.NoAttentionBackend.make(
        what=f"KV cache {attention.kv_cache_dtype}",
        target=target,
        vllm_text=attention.error,
        ver=ver,
    )
    return [finding]
