"""select_kernels: the kernel vLLM runs for every module of a checkpoint on a target.

``api.check`` calls ``select_kernels(inventory, resolution, target, version, env, model=...,
quant=...)`` and adds the returned findings; the reports render ``KernelReport.kinds()``
(the capability table: scheme, minimum capability vs the GPU's, kernel) and ``as_dict()``.
"""

from __future__ import annotations

from servecheck.core import Target
from servecheck.findings.collect import Collector
from servecheck.findings.registry import Finding
from servecheck.findings.rules import hardware as rules
from servecheck.hardware.attention import AttentionChoice, select_attention
from servecheck.hardware.conditions import Device
from servecheck.hardware.cpu_backend import select_cpu_kernels
from servecheck.hardware.env import KernelEnv, resolve_env
from servecheck.hardware.kernel_findings import add_no_kernel, add_not_modelled, attention_findings
from servecheck.hardware.kernel_report import KernelReport, ModuleKernel, module_kernel
from servecheck.hardware.kernels import Context, KernelChoice
from servecheck.hardware.linear_kernels import linear_kernel
from servecheck.hardware.moe_backends import FORCED_FAILED, moe_backend
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import ATTENTION, EXPERTS, Inventory
from servecheck.quant.resolve import Resolution, ResolutionResult
from servecheck.quant.spec import QuantSpec
from servecheck.versions import Release, checked_through


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
    newest = checked_through()
    if ver < newest:  # a later release is flagged by V003
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
    )


def _choice(res: Resolution, ctx: Context) -> KernelChoice | None:
    try:
        if res.module.kind == EXPERTS:
            return moe_backend(res, ctx)
        return linear_kernel(res, ctx)
    except LookupError:
        # kernels.toml has no candidate list for this release (its rows start later): the
        # choice is not modelled here, which the report shows as a warning, never as OK.
        family = "moe" if res.module.kind == EXPERTS else "linear"
        label = f"{res.scheme or res.method}: kernel selection not modelled for vLLM {ctx.version}"
        return KernelChoice(family=family, kernel=None, label=label, modelled=False)


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


_FUNCTION = {
    "fp8_linear": "init_fp8_linear_kernel",
    "fp8_block_linear": "init_fp8_linear_kernel",
    "wfp8a16_linear": "init_wfp8_a16_linear_kernel",
    "mp_linear": "choose_mp_linear_kernel",
    "int8_linear": "init_int8_linear_kernel",
    "nvfp4_linear": "init_nvfp4_linear_kernel",
    "mxfp4_linear": "init_mxfp4_linear_kernel",
    "mxfp8_linear": "init_mxfp8_linear_kernel",
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
