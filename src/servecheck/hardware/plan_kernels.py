"""select_kernels: the kernel vLLM runs for every module of a checkpoint on a target.

``api.check`` calls ``select_kernels(inventory, resolution, target, version, env, model=...,
quant=...)`` and adds the returned findings; the reports render ``KernelReport.kinds()``
(the capability table: scheme, minimum capability vs the GPU's, kernel) and ``as_dict()``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from servecheck.core import KIND_ORDER, Target
from servecheck.findings.collect import Collector
from servecheck.findings.registry import Finding
from servecheck.findings.rules import hardware as rules
from servecheck.hardware.attention import AttentionChoice, select_attention
from servecheck.hardware.conditions import Device
from servecheck.hardware.env import KernelEnv, resolve_env
from servecheck.hardware.kernels import Context, KernelChoice
from servecheck.hardware.linear_kernels import linear_kernel
from servecheck.hardware.moe_backends import FORCED_FAILED, moe_backend
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import ATTENTION, EXPERTS, Inventory
from servecheck.quant.resolve import Resolution, ResolutionResult
from servecheck.quant.spec import QuantSpec
from servecheck.versions import Release, known_releases

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
    kind_order: tuple[str, ...] = field(default=(), compare=False)

    @cached_property
    def _index(self) -> dict[str, ModuleKernel]:
        return {m.name: m for m in self.modules}

    def by_name(self) -> dict[str, ModuleKernel]:
        return self._index

    def first_error(self) -> ModuleKernel | None:
        """The module whose kernel error vLLM hits first: layer construction runs in module
        order before any weight is loaded; load-time errors (process_weights_after_loading)
        come after."""
        for stage in ("init", "load"):
            for m in self.modules:
                if m.choice.error and m.choice.stage == stage:
                    return m
        return None

    def kinds(self) -> list[KindKernels]:
        groups: dict[str, list[ModuleKernel]] = {}
        for m in self.modules:
            groups.setdefault(m.kind, []).append(m)
        order = {k: i for i, k in enumerate(self.kind_order)}
        rows = []
        for kind in sorted(groups, key=lambda k: order.get(k, 99)):
            ms = groups[kind]
            caps = [m.min_capability for m in ms if m.min_capability is not None]
            need = max(caps) if caps else None
            have = self.device.capability
            cap_ok = None if need is None or have is None else have >= need
            kernels = Counter(
                m.choice.label
                if m.choice.ok
                else "✗ "
                + (m.choice.error_type or "error")
                + (" at load" if m.choice.stage == "load" else "")
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


def device_for(target: Target) -> Device:
    if target.kind == "cpu":
        return Device("cpu", None, target.name)
    return Device("cuda", target.capability, target.name)


def select_kernels(
    inventory: Inventory,
    resolution: ResolutionResult,
    target: Target,
    version: Release,
    env: KernelEnv | None = None,
    *,
    model: ModelConfig | None = None,
    quant: QuantSpec | None = None,
    dtype: str | None = None,
) -> KernelReport | None:
    """The kernel for every module on ``target`` (None when no target was named).

    ``env`` defaults to the release's official wheel (hardware/env.py).
    """
    if target.kind not in ("gpu", "cpu"):
        return None
    ver = version
    env = env or resolve_env(ver)
    device = device_for(target)
    if device.kind == "cpu":
        from servecheck.hardware.cpu_backend import select_cpu_kernels

        return select_cpu_kernels(inventory, resolution, target, ver, env, model=model, quant=quant)
    ctx = Context(
        device=device,
        version=ver,
        env=env,
        tp=max(target.count, 1),
        model_type=model.model_type if model else None,
        dtype=dtype or (model.dtype if model and model.dtype else "bfloat16"),
        activation=model.hidden_act if model else "silu",
        extra={"fp8_activation_scheme": quant.fp8.activation_scheme}
        if quant is not None and quant.fp8 is not None
        else {},
    )
    modules: list[ModuleKernel] = []
    for res in resolution.resolutions:
        choice = _choice(res, ctx)
        if choice is None:
            continue
        modules.append(module_kernel(res, choice, res.min_capability))
    attention = attention_fp8 = None
    notes: list[str] = []
    if model is not None and any(m.kind == ATTENTION for m in inventory.modules):
        attention = select_attention(model, device, env, ver, "auto")
        attention_fp8 = select_attention(model, device, env, ver, "fp8")
    newest = known_releases()[-1]
    if ver != newest:
        notes.append(
            f"kernel selection for vLLM {ver}: candidate lists and the rules that changed are "
            f"keyed by release (knowledge/kernels.toml); everything else mirrors {newest}"
        )
    findings = _findings(modules, attention, target, device, ver, env)
    return KernelReport(
        target_name=target.name,
        device=device,
        version=ver,
        env=env,
        modules=tuple(modules),
        attention=attention,
        attention_fp8=attention_fp8,
        findings=tuple(findings),
        notes=tuple(notes),
        kind_order=KIND_ORDER,
    )


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


def _choice(res: Resolution, ctx: Context) -> KernelChoice | None:
    if res.module.kind == EXPERTS:
        return moe_backend(res, ctx)
    return linear_kernel(res, ctx)


def _findings(
    modules: list[ModuleKernel],
    attention: AttentionChoice | None,
    target: Target,
    device: Device,
    ver: Release,
    env: KernelEnv,
) -> list[Finding]:
    out: list[Finding] = []
    tname = f"{target.name} ({device.sm})"
    cuda_finding = _cuda_build(target, device, ver, env)
    if cuda_finding is not None:
        out.append(cuda_finding)
    col = Collector()
    for m in modules:
        c = m.choice
        scheme = m.scheme or "unquantized"
        reasons = "; ".join(c.deciding()[:4]) or "no candidate"
        if not c.modelled:
            add_not_modelled(col, m, tname, ver)
            continue
        if c.error:
            if c.label.startswith("rejected"):
                col.add(
                    rules.MoeSchemeRejected,
                    m.name,
                    key=c.error,
                    module=m.name,
                    vllm_text=c.error,
                    exception=c.error_type,
                    ver=ver,
                )
            elif c.label == FORCED_FAILED:
                col.add(
                    rules.ForcedBackendUnsupported,
                    m.name,
                    key=c.error,
                    module=m.name,
                    backend=c.steps[0].candidate if c.steps else "?",
                    reason=c.steps[0].reason if c.steps else "",
                    vllm_text=c.error,
                    exception=c.error_type,
                    ver=ver,
                )
            else:
                function = _FUNCTION.get(c.family, "choose_scaled_mm_linear_kernel")
                add_no_kernel(col, m, tname, reasons, function, ver)
            continue
        if c.kernel and "Emulation" in (c.experts or c.kernel):
            col.add(
                rules.EmulationFallback,
                m.name,
                key=(scheme, c.kernel),
                module=m.name,
                scheme=scheme,
                kernel=c.label,
                target=tname,
                source=c.source,
                vllm_text=c.warning or "",
                ver=ver,
            )
        elif m.degraded:
            fp4 = m.scheme in ("W4A4Fp4", "W4A4Mxfp4")
            col.add(
                rules.WeightOnlyFallback,
                m.name,
                key=(scheme, c.label),
                module=m.name,
                scheme=scheme,
                kernel=c.label,
                target=tname,
                need="sm_100" if fp4 else "sm_89",
                fmt="FP4" if fp4 else "FP8",
                source=c.source.split(";")[0],
                vllm_text=c.warning or "",
                ver=ver,
            )
    out += col.findings()
    out += attention_findings(attention, tname, ver)
    return out


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


_FUNCTION = {
    "fp8_linear": "init_fp8_linear_kernel",
    "fp8_block_linear": "init_fp8_linear_kernel",
    "wfp8a16_linear": "init_wfp8_a16_linear_kernel",
    "mp_linear": "choose_mp_linear_kernel",
    "int8_linear": "init_int8_linear_kernel",
    "nvfp4_linear": "init_nvfp4_linear_kernel",
    "mxfp4_linear": "init_mxfp4_linear_kernel",
}


def _cuda_build(target: Target, device: Device, ver: Release, env: KernelEnv) -> Finding | None:
    """H005: the build's CUDA version outside [min_cuda, max_cuda] of the architecture."""
    from servecheck.hardware.gpus import load_capabilities

    info = load_capabilities().get(device.capability or -1)
    if info is None:
        return None
    low = env.cuda_at_least(info.min_cuda)
    high = info.max_cuda is None or not env.cuda_at_least(_next_minor(info.max_cuda))
    if low and high:
        return None
    need = f">= {info.min_cuda}" if not low else f"<= {info.max_cuda}"
    return rules.CudaBuildLacksArch.make(
        target=target.name,
        sm=device.sm,
        need=need,
        cuda=env.cuda,
        env_source=env.source.split(";")[0],
        ver=ver,
    )


def _next_minor(version: str) -> str:
    major, minor = (int(x) for x in [*version.split("."), "0"][:2])
    return f"{major}.{minor + 1}"
