"""vLLM 0.11's MoE backend rules: before the fused-MoE oracles, each quantization method chose
its experts kernel in ``__init__``. ``moe_backends.py`` calls these for releases without
``moe_backend_oracle`` (knowledge/vllm_versions.toml)."""

from __future__ import annotations

from dataclasses import replace

from servecheck.hardware.conditions import Layer, check_row
from servecheck.hardware.kernels import Context, KernelChoice, Step, chosen
from servecheck.quant.resolve import Resolution


def fp8_0_11(
    res: Resolution, ctx: Context, layer: Layer, notes: tuple[str, ...], plain: bool
) -> KernelChoice:
    """vLLM 0.11 had no MoE oracle: the quant methods chose in __init__.

    CT: compressed_tensors_moe.py:531-548 CompressedTensorsW8A8Fp8MoEMethod (Marlin below
    sm_89; vLLM CUTLASS for non-block on exactly sm_90/sm_100; else Triton fused_experts).
    fp8: layers/quantization/fp8.py:437-480 Fp8MoEMethod (FlashInfer if
    VLLM_USE_FLASHINFER_MOE_FP8; Marlin below sm_89; DeepGEMM for block if supported; CUTLASS
    block-scaled grouped GEMM on sm_100; else Triton).
    """
    cap = ctx.device.capability or 0
    env = ctx.env
    block = layer.weight_key is not None and "Block" in layer.weight_key
    steps: list[Step] = []

    def pick(backend: str, experts: str, why: str) -> KernelChoice:
        steps.append(Step(backend, True, why))
        return chosen("fp8_moe", backend, ctx.version, steps, experts=experts, notes=notes)

    if not ctx.device.is_cuda:
        return KernelChoice("fp8_moe", None, "not modelled", modelled=False)
    if plain:
        if env.flag("VLLM_USE_FLASHINFER_MOE_FP8") and env.has("flashinfer"):
            return pick("FLASHINFER_CUTLASS", "FlashInferExperts", "VLLM_USE_FLASHINFER_MOE_FP8=1")
        if cap < 89 or env.flag("VLLM_TEST_FORCE_FP8_MARLIN"):
            return pick("MARLIN", "MarlinExperts", "compute capability below 8.9")
        if block:
            dg = check_row("DeepGemmExperts", ctx.version, ctx.device, env, layer)
            if dg.ok:
                return pick("DEEPGEMM", "TritonOrDeepGemmExperts", "DeepGEMM supported")
            steps.append(Step("DEEPGEMM", False, dg.reason))
            if cap == 100:
                return pick(
                    "CUTLASS_BLOCK_SCALED_GROUPED_GEMM", "TritonExperts", "block FP8 on sm_100"
                )
        return pick("TRITON", "TritonExperts", "fused_experts")
    if cap < 89 or (env.flag("VLLM_TEST_FORCE_FP8_MARLIN") and not block):
        return pick("MARLIN", "MarlinExperts", "compute capability below 8.9")
    if not block and cap in (90, 100):
        cut = check_row("CutlassExpertsFp8", ctx.version, ctx.device, env, layer)
        if cut.ok:
            return pick("VLLM_CUTLASS", "CutlassExpertsFp8", "_is_fp8_w8a8_sm90/_sm100")
        steps.append(Step("VLLM_CUTLASS", False, cut.reason))
    return pick("TRITON", "TritonExperts", "fused_experts")


def nvfp4_0_11(ctx: Context, layer: Layer) -> KernelChoice:
    """vLLM 0.11 layers/quantization/utils/nvfp4_moe_support.py:28-58 detect_nvfp4_moe_support."""
    steps: list[Step] = []
    cutlass = check_row("CutlassNvFp4LinearKernel", ctx.version, ctx.device, ctx.env, layer)
    if cutlass.ok:
        if ctx.env.flag("VLLM_USE_FLASHINFER_MOE_FP4") and ctx.env.has("flashinfer"):
            return chosen(
                "nvfp4_moe", "FLASHINFER_CUTLASS", ctx.version, experts="FlashInferExperts"
            )
        return chosen("nvfp4_moe", "VLLM_CUTLASS", ctx.version, experts="CutlassExpertsFp4")
    steps.append(Step("VLLM_CUTLASS", False, cutlass.reason))
    if ctx.device.is_cuda and (ctx.device.capability or 0) >= 75:
        steps.append(Step("MARLIN", True))
        return chosen("nvfp4_moe", "MARLIN", ctx.version, steps, experts="MarlinExperts")
    return KernelChoice(
        family="nvfp4_moe",
        kernel=None,
        label="no backend",
        steps=tuple(steps),
        error="Current platform does not support NVFP4 quantization. Please use Blackwell GPUs "
        "or enable FlashInfer.",
        error_type="ValueError",
    )


def no_fp8_warning(choice: KernelChoice) -> KernelChoice:
    """MarlinExperts' row carries the FP8 Marlin warning; the mxfp4 methods log none (0.24
    oracle/mxfp4.py:725-735 prepare_moe_mxfp4_layer_for_marlin)."""
    return replace(choice, warning=None) if choice.experts == "MarlinExperts" else choice


def mxfp4_0_11(ctx: Context) -> KernelChoice:
    """vLLM 0.11 quantization/mxfp4.py:59-107 get_mxfp4_backend (Mxfp4MoEMethod, gpt-oss too):
    FlashInfer variants only when installed (sm_90 with VLLM_USE_FLASHINFER_MOE_MXFP4_BF16;
    exactly sm_100 always), else Marlin below sm_90 or without triton_kernels, else Triton
    (torch 2.8 ships with 0.11). No backend off CUDA raises AssertionError at :165-167."""
    cap = ctx.device.capability or 0
    env = ctx.env
    fi = env.has("flashinfer")

    def pick(backend: str, experts: str, why: str) -> KernelChoice:
        return chosen(
            "mxfp4_moe",
            backend,
            ctx.version,
            [Step(backend, True, why)],
            experts=experts,
            source="0.11.0 quantization/mxfp4.py:59-107 get_mxfp4_backend",
        )

    if not ctx.device.is_cuda:
        return KernelChoice(
            family="mxfp4_moe",
            kernel=None,
            label="no backend",
            error="No MXFP4 MoE backend (FlashInfer/Marlin/Triton) available.Please check your "
            "environment and try again.",
            error_type="AssertionError",
            source="0.11.0 quantization/mxfp4.py:161-167 Mxfp4MoEMethod.__init__",
        )
    if cap == 90 and fi and env.flag("VLLM_USE_FLASHINFER_MOE_MXFP4_BF16"):
        return pick(
            "SM90_FI_MXFP4_BF16", "FlashInferExperts", "VLLM_USE_FLASHINFER_MOE_MXFP4_BF16=1"
        )
    if cap == 100 and fi:
        if env.flag("VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8_CUTLASS"):
            return pick(
                "SM100_FI_MXFP4_MXFP8_CUTLASS",
                "FlashInferExperts",
                "VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8_CUTLASS=1",
            )
        if env.flag("VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8"):
            return pick(
                "SM100_FI_MXFP4_MXFP8_TRTLLM",
                "TrtLlmMxfp4ExpertsMonolithic",
                "VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1",
            )
        return pick("SM100_FI_MXFP4_BF16", "TrtLlmMxfp4ExpertsMonolithic", "sm_100 with FlashInfer")
    if cap // 10 < 9 or not env.has("triton_kernels"):
        return no_fp8_warning(
            pick("MARLIN", "MarlinExperts", "below sm_90 or triton_kernels not installed")
        )
    return pick("TRITON", "OAITritonExperts", "triton_kernels installed (torch >= 2.8)")
