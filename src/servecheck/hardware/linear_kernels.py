"""The kernel vLLM selects for a quantized linear layer.

Mirrors vLLM 0.33 ``model_executor/kernels/linear/__init__.py``: the scheme builds a layer
config (weight/activation QuantKeys, dtypes, partition shape) and one of ``init_fp8_linear_kernel``,
``init_wfp8_a16_linear_kernel``, ``choose_mp_linear_kernel``, ``init_int8_linear_kernel``,
``init_nvfp4_linear_kernel`` or ``init_mxfp4_linear_kernel`` walks its candidate list. The
candidate lists and each kernel's support checks are data (knowledge/kernels.toml).
"""

from __future__ import annotations

from servecheck.hardware.conditions import Device, Layer, cap_matches, check_row, feature
from servecheck.hardware.env import KernelEnv
from servecheck.hardware.kernels import (
    Context,
    KernelChoice,
    Step,
    candidates,
    chosen,
    first_passing,
    prioritize_humming,
    selection,
    selection_source,
)
from servecheck.model.inventory import Module
from servecheck.quant.args import QuantArgs
from servecheck.quant.resolve import Resolution

# vLLM 0.33 compressed_tensors/schemes/compressed_tensors_wNa16.py:41-58
WNA16_TYPES = {2: "uint2b2", 3: "uint3b4", 4: "uint4b8", 5: "uint5b16", 6: "uint6b32"}
WNA16_TYPES.update({7: "uint7b64", 8: "uint8b128"})
WNA16_ZP_TYPES = {b: f"uint{b}" for b in range(2, 9)}
# vLLM 0.33 compressed_tensors_wNa8o8.py:38-42 WNA8O8_SUPPORTED_TYPES_MAP
WNA8O8_TYPES = {2: "uint2b2", 4: "uint4b8", 8: "uint8b128"}
# Schemes whose layers choose_mp_linear_kernel picks the kernel for: WNA16; W4A8Fp8 (FP8
# activations); W4A8Int, WNA8Int, WNA4Int and WNA8O8Int quantize activations outside the
# kernel and hand it 16-bit activations (compressed_tensors_w4a8_int.py, wNa8.py, wNa4.py,
# wNa8o8.py create_weights: act_type=params_dtype)
MIXED_PRECISION = frozenset({"WNA16", "W4A8Fp8", "W4A8Int", "WNA8Int", "WNA4Int", "WNA8O8Int"})

UNQUANTIZED = "UnquantizedLinearMethod"

# Linear methods that call one kernel directly instead of choosing among candidates.
FIXED_KERNELS = {
    "GPTQ_EXLLAMA": (
        "gptq_gemm",
        "ExLlama gptq_gemm (GPTQLinearMethod)",
        "model_executor/layers/quantization/gptq.py GPTQLinearMethod.apply",
    ),
    "BNB_4BIT": (
        "bnb_matmul_4bit",
        "bitsandbytes matmul_4bit (4-bit weights, 16-bit GEMM)",
        "model_executor/layers/quantization/bitsandbytes.py BitsAndBytesLinearMethod."
        "_apply_4bit_weight (0.27: bitsandbytes.matmul_4bit)",
    ),
    "BNB_8BIT": (
        "bnb_matmul_8bit",
        "bitsandbytes LLM.int8 matmul",
        "model_executor/layers/quantization/bitsandbytes.py BitsAndBytesLinearMethod."
        "_apply_8bit_weight (0.27: bitsandbytes.matmul with MatmulLtState)",
    ),
    "QUARK_W4A8_MXFP4_FP8": (
        "emulation",
        "MXFP4 weights dequantized to 16 bits (emulation; AITER kernel on ROCm only)",
        "model_executor/layers/quantization/quark/schemes/quark_w4a8_mxfp4_fp8.py "
        "QuarkW4A8_MXFP4_FP8.apply_weights",
    ),
    "AWQ_GEMM": (
        "awq_gemm",
        "AWQ awq_gemm / awq_dequantize + matmul",
        "model_executor/layers/quantization/auto_awq.py AutoAWQLinearMethod.apply (0.24+), "
        "awq.py AWQLinearMethod.apply (older)",
    ),
}


def partition_shape(m: Module, tp: int) -> tuple[int, int]:
    """(N, K) of the weight one TP rank holds: vLLM's layer.weight.shape."""
    n, k = m.out_features, m.in_features
    if m.tp_split in ("column", "qkv", "vocab"):
        n = max(n // tp, 1)
    elif m.tp_split == "row":
        k = max(k // tp, 1)
    return n, k


def fp8_block_weight_key(block: tuple[int, int]) -> str:
    # vLLM 0.33 quant_utils.py:228-229 kFp8Static128BlockSym is GroupShape(128, 128)
    if tuple(block) == (128, 128):
        return "kFp8Static128BlockSym"
    return f"kFp8StaticBlock{block[0]}x{block[1]}Sym"


def fp8_group_act_key(group: int) -> str:
    # vLLM 0.33 quant_utils.py:225-226 kFp8Dynamic128Sym is GroupShape(1, 128)
    return "kFp8Dynamic128Sym" if group == 128 else f"kFp8Dynamic{group}Sym"


def cutlass_fp8_supported(device: Device, env: KernelEnv) -> bool:
    """vLLM 0.33 layers/quantization/utils/w8a8_utils.py:11-18 cutlass_fp8_supported.

    csrc/quantization/w8a8/cutlass/scaled_mm_entry.cu cutlass_scaled_mm_supports_fp8:
    cap >= 90 needs CUDA 12.0, cap 89 needs CUDA 12.4, anything else False.
    """
    cap = device.capability
    if not device.is_cuda or cap is None:
        return False
    if cap >= 90:
        return env.cuda_at_least("12.0")
    if cap >= 89:
        return env.cuda_at_least("12.4")
    return False


def linear_kernel(res: Resolution, ctx: Context) -> KernelChoice | None:
    """The kernel for one linear module, or None for layers that are not linear."""
    m = res.module
    if not (m.is_linear or m.kind == "lm_head"):
        return None
    if res.error:
        return None
    if res.scheme is None:
        return KernelChoice(
            family="unquantized_linear",
            kernel=UNQUANTIZED,
            label="BF16 GEMM (torch / cuBLAS)"
            if ctx.device.is_cuda
            else "BF16 GEMM (torch / oneDNN)",
            source="model_executor/layers/linear.py UnquantizedLinearMethod",
        )
    scheme = res.kernel_scheme or res.scheme
    if scheme == "GGUF":
        # vLLM 0.10-0.23 quantization/gguf.py _fused_mul_mat_gguf: x @ W.T for F32/F16/BF16;
        # ggml_mul_mat_vec_a8 (MMVQ) for small batches, ggml_mul_mat_a8 (MMQ) for the standard
        # and K-quants, dequantize + GEMM for the I-quants
        plain = set((res.note or "").split("/")) <= {"F32", "F16", "BF16"}
        how = "torch matmul" if plain else "ggml MMVQ/MMQ kernels"
        return KernelChoice(
            family="gguf_linear",
            kernel="matmul" if plain else "ggml_mul_mat",
            label=f"GGUF {res.note} ({how})",
            source="model_executor/layers/quantization/gguf.py _fused_mul_mat_gguf",
        )
    if scheme in FIXED_KERNELS:
        kernel, label, source = FIXED_KERNELS[scheme]
        return KernelChoice(family="fixed_linear", kernel=kernel, label=label, source=source)
    if scheme == "W8A8Fp8":
        return _w8a8_fp8(res, ctx)
    if scheme == "Fp8":
        return _plain_fp8(res, ctx)
    if scheme == "W8A16Fp8":
        return _w8a16_fp8(res, ctx)
    if scheme in MIXED_PRECISION:
        return _mixed_precision(res, ctx)
    if scheme == "W8A8Mxfp8":
        return _mxfp8(res, ctx)
    if scheme == "W8A8Int8":
        return _int8(res, ctx)
    if scheme == "W4A4Fp4":
        return _nvfp4(res, ctx)
    if scheme in ("W4A4Mxfp4", "W4A8Mxfp4"):
        # vLLM 0.33 compressed_tensors_w4a8_mxfp4.py: W4A8Mxfp4 tries the MXFP4 kernels with its
        # FP8 activation key and falls back to the W4A4 activation format, so the MXFP4 walk
        return _mxfp4(res, ctx)
    return KernelChoice(
        family="linear",
        kernel=None,
        label=f"{scheme}: kernel selection not modelled",
        modelled=False,
    )


def _base_layer(res: Resolution, ctx: Context) -> dict:
    n, k = partition_shape(res.module, ctx.tp)
    return dict(
        n=n,
        k=k,
        full_k=res.module.in_features,
        out_dtype=ctx.dtype,
        act_dtype=ctx.dtype,
        model_type=ctx.model_type,
    )


def _fp8_choice(layer: Layer, block: bool, ctx: Context) -> KernelChoice:
    """vLLM 0.33 kernels/linear/__init__.py:746-842 init_fp8_linear_kernel."""
    family = "fp8_block_linear" if block else "fp8_linear"
    names = candidates(family, ctx.version)
    # __init__.py:410-441 _resolve_backend_kernels -> prioritize_humming
    names = prioritize_humming(names, ctx.device.capability)
    return _first_passing(family, names, layer, ctx)


def _first_passing(family: str, names: list[str], layer: Layer, ctx: Context) -> KernelChoice:
    """The first of ``names`` that passes its checks, else the family's error (kernels.toml)."""
    return first_passing(
        family,
        names,
        ctx.version,
        ctx.device,
        ctx.env,
        layer,
        error=selection(family)["error"],
        source=selection_source(family, ctx.version),
    )


def _fp8_block_layer(block: tuple[int, int], act_static: bool, base: dict) -> Layer:
    """Block FP8 weights, activations quantized per group of block_n (1 x bn)."""
    bn, bk = block
    return Layer(
        weight_key=fp8_block_weight_key((bn, bk)),
        act_key=fp8_group_act_key(bn),
        weight_block=(bn, bk),
        act_group=(1, bn),
        act_static=act_static,
        **base,
    )


def _w8a8_fp8(res: Resolution, ctx: Context) -> KernelChoice:
    """vLLM 0.33 compressed_tensors/schemes/compressed_tensors_w8a8_fp8.py:56-80."""
    w, i = res.weights, res.inputs
    assert w is not None
    static_input = i is not None and not i.dynamic
    base = _base_layer(res, ctx)
    if w.strategy == "block" and w.block_structure:
        bn, bk = w.block_structure
        return _fp8_choice(_fp8_block_layer((bn, bk), static_input, base), True, ctx)
    wkey = "kFp8StaticChannelSym" if w.strategy == "channel" else "kFp8StaticTensorSym"
    akey = "kFp8StaticTensorSym" if static_input else "kFp8DynamicTokenSym"
    layer = Layer(weight_key=wkey, act_key=akey, act_static=static_input, **base)
    return _fp8_choice(layer, False, ctx)


def _plain_fp8(res: Resolution, ctx: Context) -> KernelChoice:
    """vLLM 0.33 layers/quantization/fp8.py:240-281 Fp8LinearMethod.__init__."""
    base = _base_layer(res, ctx)
    static = ctx.extra.get("fp8_activation_scheme") == "static"
    if res.block_size:
        bn, bk = res.block_size
        return _fp8_choice(_fp8_block_layer((bn, bk), static, base), True, ctx)
    if static:
        akey = "kFp8StaticTensorSym"
    elif cutlass_fp8_supported(ctx.device, ctx.env):
        akey = "kFp8DynamicTokenSym"  # per-token when CUTLASS can run it
    else:
        akey = "kFp8DynamicTensorSym"
    layer = Layer(weight_key="kFp8StaticTensorSym", act_key=akey, act_static=static, **base)
    return _fp8_choice(layer, False, ctx)


def _w8a16_fp8(res: Resolution, ctx: Context) -> KernelChoice:
    """vLLM 0.33 compressed_tensors/schemes/compressed_tensors_w8a16_fp8.py:38-51."""
    w, i = res.weights, res.inputs
    assert w is not None
    wkey = {"channel": "kFp8StaticChannelSym", "tensor": "kFp8StaticTensorSym"}.get(
        w.strategy, fp8_block_weight_key(w.block_structure or (128, 128))
    )
    akey = "kFp8StaticTensorSym" if i is not None and not i.dynamic else "kFp8DynamicTensorSym"
    layer = Layer(weight_key=wkey, act_key=akey, **_base_layer(res, ctx))
    family = "wfp8a16_linear"
    choice = _first_passing(family, candidates(family, ctx.version), layer, ctx)
    # W8A16 is what the checkpoint asks for (or what vLLM downgraded W8A8 to): not a
    # fallback of the kernel, but the scheme's own warning applies.
    return choice


def mp_weight_type(w: QuantArgs, fp8_act: bool, scheme: str = "WNA16") -> str:
    if fp8_act or scheme == "W4A8Int":
        # vLLM 0.33 compressed_tensors_w4a8_fp8.py:31-33 / w4a8_int.py:27-29 (signed int4)
        return "int4" if w.num_bits == 4 else f"int{w.num_bits}"
    if scheme == "WNA8O8Int":
        return WNA8O8_TYPES.get(w.num_bits, f"uint{w.num_bits}")
    table = WNA16_TYPES if w.symmetric else WNA16_ZP_TYPES
    return table.get(w.num_bits, f"uint{w.num_bits}")


def _mixed_precision(res: Resolution, ctx: Context) -> KernelChoice:
    """vLLM 0.33 compressed_tensors_wNa16.py:116-150 and kernels/linear/__init__.py:887-955."""
    w = res.weights
    assert w is not None
    fp8_act = res.scheme == "W4A8Fp8"
    base = _base_layer(res, ctx)
    if fp8_act:
        base["act_dtype"] = "float8_e4m3fn"
    group = w.group_size if w.strategy == "group" and w.group_size else -1
    scheme = res.kernel_scheme or res.scheme or "WNA16"
    layer = Layer(
        weight_type=mp_weight_type(w, fp8_act, scheme),
        group_size=group,
        # W4A8Int and WNA8O8Int build MPLinearLayerConfig with zero_points=False
        zero_points=not w.symmetric and scheme not in ("W4A8Int", "WNA8O8Int"),
        has_g_idx=w.actorder == "group",
        **base,
    )
    family = "mp_linear"
    names = prioritize_humming(candidates(family, ctx.version), ctx.device.capability)
    return _first_passing(family, names, layer, ctx)


def _int8(res: Resolution, ctx: Context) -> KernelChoice:
    """vLLM 0.33 kernels/linear/__init__.py:844-884 init_int8_linear_kernel."""
    layer = Layer(**_base_layer(res, ctx))
    family = "int8_linear"
    names = prioritize_humming(candidates(family, ctx.version), ctx.device.capability)
    return _first_passing(family, names, layer, ctx)


A16_NVFP4 = (
    "B12xNvFp4W4A16LinearKernel",
    "FlashInferCuteDslNvFp4W4A16LinearKernel",
    "MarlinNvFp4LinearKernel",
    "HummingNvFp4LinearKernel",
)


def _nvfp4(res: Resolution, ctx: Context) -> KernelChoice:
    """vLLM 0.33 kernels/linear/__init__.py:1191-1310 init_nvfp4_linear_kernel."""
    use_a16 = res.inputs is None
    family = "nvfp4_linear"
    layer = Layer(weight_key="kNvfp4Static", act_key=None if use_a16 else "kNvfp4Dynamic")
    source = selection_source(family, ctx.version)
    cap = ctx.device.capability
    force: str | None = None
    if ctx.env.flag("VLLM_BATCH_INVARIANT"):
        ok = check_row("CutlassNvFp4LinearKernel", ctx.version, ctx.device, ctx.env, layer).ok
        force = "CutlassNvFp4LinearKernel" if ok else "EmulationNvFp4LinearKernel"
    elif use_a16:
        if feature(ctx.version, "nvfp4_a16_linear") == "marlin":
            # vLLM 0.24 kernels/linear/__init__.py:881-883: W4A16 always forces Marlin.
            force = "MarlinNvFp4LinearKernel"
        else:
            cutedsl = check_row(
                "FlashInferCuteDslNvFp4W4A16LinearKernel", ctx.version, ctx.device, ctx.env, layer
            ).ok
            if cap in (100, 103) and cutedsl:
                force = "FlashInferCuteDslNvFp4W4A16LinearKernel"
            elif cap != 90:
                # prefers_humming(cap) (humming/priority.py:11-23) is cap == 90; there the
                # A16 list is walked with Humming ahead of Marlin instead.
                force = "MarlinNvFp4LinearKernel"
    if force is not None:
        verdict = check_row(force, ctx.version, ctx.device, ctx.env, layer)
        if not verdict.ok:
            reason = (verdict.reason or "").removeprefix(force + " ")
            return KernelChoice(
                family=family,
                kernel=None,
                label="no kernel",
                steps=(Step(force, False, verdict.reason),),
                error=f"Forced NVFP4 kernel {force} is not supported: {reason}",
                error_type="ValueError",
                source=source,
            )
        return chosen(
            family,
            force,
            ctx.version,
            [Step(force, True)],
            source=source,
            notes=("forced by init_nvfp4_linear_kernel for weight-only NVFP4 (NVFP4A16)",)
            if use_a16
            else (),
        )
    names = candidates(family, ctx.version)
    if use_a16:
        names = [n for n in names if n in A16_NVFP4]
    names = prioritize_humming(names, cap)
    return _first_passing(family, names, layer, ctx)


def _mxfp8(res: Resolution, ctx: Context) -> KernelChoice:
    """vLLM 0.33 kernels/linear/__init__.py:958-1010 init_mxfp8_linear_kernel (first of the
    CUDA list whose is_supported and can_implement pass; Humming moves ahead of Marlin on
    sm_90)."""
    family = "mxfp8_linear"
    layer = Layer(weight_key="kMxfp8Static", act_key="kMxfp8Dynamic", **_base_layer(res, ctx))
    names = prioritize_humming(candidates(family, ctx.version), ctx.device.capability)
    return _first_passing(family, names, layer, ctx)


def _mxfp4(res: Resolution, ctx: Context) -> KernelChoice:
    """vLLM 0.33 kernels/linear/__init__.py:1046-1098; CT W4A4Mxfp4 passes kMxfp4Dynamic."""
    family = "mxfp4_linear"
    layer = Layer(weight_key="kMxfp4Static", act_key="kMxfp4Dynamic")
    names = prioritize_humming(candidates(family, ctx.version), ctx.device.capability)
    return _first_passing(family, names, layer, ctx)


__all__ = ["cap_matches", "cutlass_fp8_supported", "linear_kernel", "partition_shape"]
