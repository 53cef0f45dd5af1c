"""The fused-MoE backend vLLM selects for each MoE layer.

Mirrors vLLM 0.33 ``model_executor/layers/fused_moe/oracle/*.py``: the quantization method
derives a (weight QuantKey, activation QuantKey) pair, the oracle orders its backends (with a
few device-dependent moves), and the first backend one of whose experts classes passes
``is_supported_config`` wins; none passing raises ``NotImplementedError("No <X> MoE backend
supports the deployment configuration.")``. vLLM 0.11 had no oracles: its per-method rules are
mirrored in ``moe_legacy.py``.
"""

from __future__ import annotations

import math
from dataclasses import replace

from servecheck.hardware.conditions import Layer, cap_matches, check_row, feature
from servecheck.hardware.env import kernel_table
from servecheck.hardware.kernels import (
    Context,
    KernelChoice,
    Step,
    candidates,
    chosen,
    prioritize_humming,
    selection,
    selection_source,
)
from servecheck.hardware.linear_kernels import fp8_block_weight_key
from servecheck.hardware.moe_legacy import fp8_0_11, mxfp4_0_11, no_fp8_warning, nvfp4_0_11
from servecheck.quant.args import QuantArgs
from servecheck.quant.quark import QUARK_MOE_ORACLE
from servecheck.quant.resolve import Resolution

FORCED_FAILED = "forced backend unavailable"

# MoE methods that choose an FP8 backend through select_fp8_moe_backend (0.11: their own rules)
FP8_MOE_METHODS = frozenset(
    {
        "CompressedTensorsW8A8Fp8MoEMethod",
        "Fp8MoEMethod",
        "ModelOptFp8MoEMethod",
        # quantized while loading (quant/online.py)
        "Fp8OnlineMoEMethod",
        "Fp8PerTensorOnlineMoEMethod",
        "Fp8PerBlockOnlineMoEMethod",
        "Fp8PtpcOnlineMoEMethod",
    }
)
# Methods that build their keys as Fp8MoEMethod does (allow_vllm_cutlass=False)
PLAIN_FP8_MOE = frozenset(
    {
        "Fp8MoEMethod",
        "Fp8OnlineMoEMethod",
        "Fp8PerTensorOnlineMoEMethod",
        "Fp8PerBlockOnlineMoEMethod",
    }
)

# The name vLLM uses in its log/exception text for each family.
FAMILY_TEXT = {
    "fp8": "FP8",
    "nvfp4": "NvFp4",
    "wna16": "WNA16",
    "int8": "Int8",
    "mxfp4": "Mxfp4",
    "w4a8": "W4A8",
    "unquantized": "Unquantized",
    "mxfp8": "MXFP8",
}
# MXFP8 experts: select_mxfp8_moe_backend (vLLM 0.33 fused_moe/oracle/mxfp8.py)
MXFP8_MOE_METHODS = frozenset(
    {"CompressedTensorsW8A8Mxfp8MoEMethod", "ModelOptMxFp8FusedMoE", "Mxfp8OnlineMoEMethod"}
)


def moe_backend(res: Resolution, ctx: Context) -> KernelChoice | None:
    """The backend for one fused-MoE module (None for other modules or unresolved ones)."""
    m = res.module
    if m.kind != "moe.experts" or m.experts is None or res.error:
        return None
    method = res.moe_method or res.method
    method = QUARK_MOE_ORACLE.get(method, method)
    if method == "UnquantizedFusedMoEMethod":
        return _unquantized(ctx)
    if method in FP8_MOE_METHODS:
        return _fp8(res, ctx)
    if method == "BitsAndBytesMoEMethod":
        # vLLM 0.27 bitsandbytes.py BitsAndBytesMoEMethod.apply: the 4-bit experts are
        # dequantized to 16 bits on every call and run by the Triton fused_experts
        return _fixed(
            res,
            "TRITON",
            "fused_experts (dequantized 16-bit weights)",
            "bitsandbytes.py BitsAndBytesMoEMethod.apply",
            family="bnb_moe",
        )
    if method in ("CompressedTensorsW4A4Nvfp4MoEMethod", "ModelOptNvFp4FusedMoE"):
        return _nvfp4(res, ctx)
    if method == "CompressedTensorsWNA16MoEMethod":
        return _wna16(res, ctx)
    if method == "CompressedTensorsWNA16MarlinMoEMethod":
        # vLLM 0.11/0.24 compressed_tensors_moe_wna16_marlin.py: the method itself runs the
        # Marlin MoE kernel (measured on 0.24: MarlinExperts, tests/data/gpu_truth).
        return chosen(
            "wna16_moe",
            "MARLIN",
            ctx.version,
            [Step("MARLIN", True, "CompressedTensorsWNA16MarlinMoEMethod always runs Marlin")],
            experts="MarlinExperts",
            source="compressed_tensors_moe_wna16_marlin.py CompressedTensorsWNA16MarlinMoEMethod",
        )
    if method in ("AutoGPTQMoEMethod", "AutoAWQMoEMethod"):
        # vLLM 0.33 auto_gptq.py / auto_awq.py: select_wna16_moe_backend (0.24: Marlin MoE)
        if feature(ctx.version, "wna16_moe_oracle"):
            return _wna16(res, ctx)
        return _fixed(res, "MARLIN", "MarlinExperts", "the GPTQ/AWQ Marlin MoE method")
    if method in ("GPTQMarlinMoEMethod", "AWQMoEMethod"):
        return _fixed(res, "MARLIN", "MarlinExperts", "gptq_marlin.py / awq_marlin.py MoE method")
    if method == "MoeWNA16Method":
        return _fixed(
            res,
            "MOE_WNA16",
            "TritonWNA16Experts",
            "moe_wna16.py MoeWNA16Method (fused_moe with the WNA16 Triton kernel)",
        )
    if method == "CompressedTensorsW8A8Int8MoEMethod":
        return _int8(res, ctx)
    if method == "CompressedTensorsW4A4Mxfp4MoEMethod":
        return _ct_mxfp4(ctx)
    if method in ("GptOssMxfp4MoEMethod", "Mxfp4MoEMethod"):
        return _mxfp4(method, ctx)
    if method in MXFP8_MOE_METHODS:
        return _mxfp8(ctx)
    if method == "CompressedTensorsW4A8Mxfp4MoEMethod":
        # vLLM 0.33 compressed_tensors_moe_w4a8_mxfp4.py: a subclass of Mxfp4MoEMethod
        return _mxfp4("Mxfp4MoEMethod", ctx)
    if method == "CompressedTensorsW4A8Int8MoEMethod" and feature(
        ctx.version, "moe_backend_oracle"
    ):
        # vLLM 0.24+ fused_moe/oracle/w4a8_int8.py select_w4a8_int8_moe_backend: CPU only
        return KernelChoice(
            family="w4a8_int8_moe",
            kernel=None,
            label="no backend",
            error="W4A8 Int8 MoE is only supported on CPU platforms",
            error_type="NotImplementedError",
            source="model_executor/layers/fused_moe/oracle/w4a8_int8.py "
            "select_w4a8_int8_moe_backend",
        )
    if method == "GGUFMoEMethod":
        # vLLM 0.10-0.23 quantization/gguf.py _fused_moe_gguf: ggml_moe_a8 (MMQ types) or
        # ggml_moe_a8_vec (MMVQ types); other types loop per token (F010)
        return _fixed(
            res,
            "GGUF",
            "fused_moe_gguf",
            "gguf.py GGUFMoEMethod.apply",
            family="gguf_moe",
        )
    if method == "CompressedTensorsW4A8Fp8MoEMethod":
        layer = Layer(weight_key="kInt4Static", act_key="kFp8DynamicTokenSym")
        return _walk("w4a8", candidates("w4a8_moe", ctx.version), ctx, layer)
    return KernelChoice(
        family="moe",
        kernel=None,
        label=f"{method}: backend selection not modelled",
        modelled=False,
    )


def _fixed(
    res: Resolution, backend: str, experts: str, source: str, family: str = "wna16_moe"
) -> KernelChoice:
    """A MoE method that runs one kernel without an oracle."""
    return KernelChoice(
        family=family,
        kernel=backend,
        label=f"{backend} ({experts})",
        steps=(Step(backend, True, f"{res.method} always runs it"),),
        experts=experts,
        source="model_executor/layers/quantization/" + source,
    )


def _experts(family: str, backend: str) -> list[str]:
    return list(kernel_table()["moe_backend"][family][backend])


def _walk(
    family: str,
    backends: list[str],
    ctx: Context,
    layer: Layer,
    *,
    skip: dict[str, str] | None = None,
    notes: tuple[str, ...] = (),
    error: str | None = None,
    act_keys: dict[str, str] | None = None,
) -> KernelChoice:
    """The oracle's loop: first backend with a supporting experts class wins. ``act_keys``:
    backends that test their own activation key instead of the layer's."""
    text = FAMILY_TEXT[family]
    steps: list[Step] = []
    for backend in backends:
        if skip and backend in skip:
            steps.append(Step(backend, False, skip[backend]))
            continue
        reason = None
        tried = layer
        if act_keys is not None:
            tried = replace(layer, act_key=act_keys.get(backend))
        for experts in _experts(family, backend):
            verdict = check_row(experts, ctx.version, ctx.device, ctx.env, tried)
            if verdict.ok:
                steps.append(Step(backend, True))
                return chosen(
                    f"{family}_moe",
                    backend,
                    ctx.version,
                    steps,
                    experts=experts,
                    source=selection_source(f"{family}_moe", ctx.version),
                    notes=notes,
                )
            reason = (verdict.reason or "").removeprefix(experts + " ").strip()
        steps.append(
            Step(
                backend,
                False,
                f"{text} MoE backend {backend} does not support the deployment configuration "
                f"since {reason}.",
            )
        )
    sel = selection(f"{family}_moe")
    return KernelChoice(
        family=f"{family}_moe",
        kernel=None,
        label="no backend",
        steps=tuple(steps),
        error=error or sel["error"],
        error_type="NotImplementedError",
        source=selection_source(f"{family}_moe", ctx.version),
        notes=notes,
    )


def _forced(family: str, backend: str, ctx: Context, layer: Layer) -> KernelChoice:
    """_return_or_raise: an explicitly requested backend that must work or raise ValueError."""
    text = FAMILY_TEXT[family]
    reason = None
    for experts in _experts(family, backend):
        verdict = check_row(experts, ctx.version, ctx.device, ctx.env, layer)
        if verdict.ok:
            return chosen(
                f"{family}_moe", backend, ctx.version, [Step(backend, True)], experts=experts
            )
        reason = (verdict.reason or "").removeprefix(experts + " ").strip()
    return KernelChoice(
        family=f"{family}_moe",
        kernel=None,
        label=FORCED_FAILED,
        steps=(Step(backend, False, reason),),
        error=f"{text} MoE backend {backend} does not support the deployment configuration "
        f"since {reason}.",
        error_type="ValueError",
    )


# --------------------------------------------------------------------------------------- FP8


def _fp8_keys(res: Resolution, ctx: Context) -> tuple[Layer, bool, tuple[str, ...]]:
    """(layer, allow_vllm_cutlass, notes) for CT W8A8-FP8 or plain fp8 MoE."""
    notes: list[str] = []
    experts = res.module.experts
    assert experts is not None
    if res.method == "ModelOptFp8MoEMethod":
        # vLLM 0.33 modelopt.py ModelOptFp8MoEMethod.__init__: static per-tensor keys for
        # every FP8 algo, select_fp8_moe_backend without vLLM CUTLASS
        layer = Layer(
            weight_key="kFp8StaticTensorSym", act_key="kFp8StaticTensorSym", act_static=True
        )
        return layer, False, ()
    if res.method in PLAIN_FP8_MOE:
        # vLLM 0.33 layers/quantization/fp8.py:492-527 Fp8MoEMethod.__init__
        # (allow_vllm_cutlass=False); online/fp8.py _Fp8OnlineMoEBase the same keys
        if res.block_size:
            block = tuple(res.block_size)
            refined = refine_block(block, experts.intermediate_size, experts.hidden_size, ctx.tp)
            if refined is not None:
                notes.append(
                    f"block scales refined from {list(block)} to {list(refined)} to fit the "
                    "TP-sharded intermediate size (only Triton accepts refined blocks)"
                )
                block = refined
            layer = Layer(
                weight_key=fp8_block_weight_key(block),
                act_key="kFp8Dynamic128Sym",
                weight_block=block,
                model_type=ctx.model_type,
            )
        else:
            static = ctx.extra.get("fp8_activation_scheme") == "static"
            if static:
                akey = "kFp8StaticTensorSym"
            elif ctx.env.flag("VLLM_BATCH_INVARIANT"):
                akey = "kFp8DynamicTokenSym"
            else:
                akey = "kFp8DynamicTensorSym"
            layer = Layer(weight_key="kFp8StaticTensorSym", act_key=akey, act_static=static)
        return layer, False, tuple(notes)
    # vLLM 0.33 compressed_tensors_moe_w8a8_fp8.py:52-112 (allow_vllm_cutlass=True)
    w, i = res.weights, res.inputs
    assert w is not None and i is not None
    static = not i.dynamic
    per_tensor = w.strategy == "tensor" and i.strategy == "tensor"
    per_channel = w.strategy == "channel" and i.strategy == "token"
    if not (per_tensor or per_channel) and w.strategy != "block":
        raise MoeSchemeRejected(
            "AssertionError",
            f"weights {w.strategy} with {i.strategy} activations is neither per-tensor, "
            "channel/token nor block (assert weight_quant.strategy == BLOCK)",
        )
    if static and per_channel:
        raise MoeSchemeRejected(
            "ValueError",
            "For FP8 Fused MoE layer, we require either per tensor or channelwise, dynamic per "
            "token quantization.",
        )
    wkey = {
        "channel": "kFp8StaticChannelSym",
        "tensor": "kFp8StaticTensorSym",
        "block": "kFp8Static128BlockSym",
    }.get(w.strategy, "kFp8StaticTensorSym")
    if wkey == "kFp8Static128BlockSym":
        akey = "kFp8Dynamic128Sym"
        block = tuple(w.block_structure) if w.block_structure else (128, 128)
    else:
        block = None
        if i.strategy == "token":
            akey = "kFp8DynamicTokenSym"
        else:
            akey = "kFp8StaticTensorSym" if static else "kFp8Dynamic128Sym"
    layer = Layer(weight_key=wkey, act_key=akey, weight_block=block, act_static=static)  # type: ignore[arg-type]
    return layer, True, tuple(notes)


def refine_block(
    block: tuple[int, ...], intermediate: int, hidden: int, tp: int
) -> tuple[int, int] | None:
    """vLLM 0.33 fused_moe/oracle/fp8.py:292-316 refine_fp8_moe_block_shape."""
    bn, bk = block[0], block[1]
    ispp = intermediate // tp
    if ispp % bn == 0 and (tp == 1 or ispp % bk == 0):
        return None
    refine = math.gcd(bn, bk, ispp, hidden)
    if refine < 32:
        return None
    return refine, refine


class MoeSchemeRejected(Exception):
    """The MoE method's constructor rejects the scheme before any backend is tried."""

    def __init__(self, error_type: str, text: str):
        super().__init__(text)
        self.error_type, self.text = error_type, text


def _fp8(res: Resolution, ctx: Context) -> KernelChoice:
    try:
        layer, allow_cutlass, notes = _fp8_keys(res, ctx)
    except MoeSchemeRejected as exc:
        return KernelChoice(
            family="fp8_moe",
            kernel=None,
            label="rejected by CompressedTensorsW8A8Fp8MoEMethod",
            error=exc.text,
            error_type=exc.error_type,
            source="model_executor/layers/quantization/compressed_tensors/"
            "compressed_tensors_moe/compressed_tensors_moe_w8a8_fp8.py:65-85",
        )
    if not feature(ctx.version, "moe_backend_oracle"):
        return fp8_0_11(res, ctx, layer, notes, res.method in PLAIN_FP8_MOE)
    cap = ctx.device.capability
    backends = candidates("fp8_moe", ctx.version)
    backends = prioritize_humming(backends, cap)  # oracle/fp8.py:104
    # oracle/fp8.py:122-133: on Hopper, block FP8 prefers Triton for TP (FI CUTLASS for EP)
    if (
        cap == 90
        and layer.act_key == "kFp8Dynamic128Sym"
        and layer.weight_key == "kFp8Static128BlockSym"
    ):
        backends.insert(0, backends.pop(backends.index("TRITON")))
    skip: dict[str, str] = {}
    env = ctx.env
    # oracle/fp8.py:483-501: an explicit VLLM_USE_DEEP_GEMM / VLLM_MOE_USE_DEEP_GEMM decides
    if env.is_set("VLLM_USE_DEEP_GEMM") or env.is_set("VLLM_MOE_USE_DEEP_GEMM"):
        if not env.flag("VLLM_USE_DEEP_GEMM") or not env.flag("VLLM_MOE_USE_DEEP_GEMM"):
            skip["DEEPGEMM"] = "DEEPGEMM removed: VLLM_USE_DEEP_GEMM or VLLM_MOE_USE_DEEP_GEMM is 0"
        else:
            choice = _forced("fp8", "DEEPGEMM", ctx, layer)
            return choice
    elif _deep_gemm_auto_disabled(ctx):
        skip["DEEPGEMM"] = f"DeepGEMM auto-disabled for model type {ctx.model_type}"
    if not allow_cutlass:
        skip["VLLM_CUTLASS"] = "vLLM CUTLASS FP8 MoE is not allowed for this quantization method"
    return _walk("fp8", backends, ctx, layer, skip=skip, notes=notes)


def _deep_gemm_auto_disabled(ctx: Context) -> bool:
    """vLLM 0.33 utils/deep_gemm.py:27-54 should_auto_disable_deep_gemm."""
    from servecheck.hardware.conditions import row

    off = row("DeepGemmFp8BlockScaledMMKernel", ctx.version).get("model_types_off", {})
    expr = off.get(ctx.model_type or "")
    return bool(expr) and cap_matches(expr, ctx.device.capability)


# ------------------------------------------------------------------------------------ others


def _nvfp4(res: Resolution, ctx: Context) -> KernelChoice:
    """vLLM 0.33 compressed_tensors_moe_w4a4_nvfp4.py:60-67, oracle/nvfp4.py:191-321."""
    use_a16 = res.inputs is None
    layer = Layer(weight_key="kNvfp4Static", act_key=None if use_a16 else "kNvfp4Dynamic")
    if not feature(ctx.version, "moe_backend_oracle"):
        return nvfp4_0_11(ctx, layer)
    backends = prioritize_humming(candidates("nvfp4_moe", ctx.version), ctx.device.capability)
    choice = _walk("nvfp4", backends, ctx, layer)
    if choice.experts == "MarlinExperts":
        # vLLM 0.33 utils/marlin_utils_fp4.py:341-346: NVFP4 experts on Marlin log the FP4 text
        choice = replace(choice, warning=FP4_MARLIN_WARNING)
    return choice


def wna16_weight_key(w: QuantArgs) -> str:
    """vLLM 0.33 compressed_tensors_moe_wna16.py:74-99 weight key for the oracle."""
    group = -1 if w.group_size is None or w.strategy != "group" else w.group_size
    if w.num_bits == 4:
        base = "kInt4Static32" if group == 32 else "kInt4Static"
        return base if w.symmetric else base + "Asym"
    if w.num_bits == 8 and w.symmetric:
        return "kInt8Static"
    return f"kUint{w.num_bits}Static{'Asym' if not w.symmetric else ''}"


def _wna16(res: Resolution, ctx: Context) -> KernelChoice:
    """vLLM 0.33 compressed_tensors_moe_wna16.py:98-108, oracle/int_wna16.py:146-358."""
    w = res.weights
    experts = res.module.experts
    assert w is not None and experts is not None
    group = -1 if w.group_size is None or w.strategy != "group" else w.group_size
    layer = Layer(weight_key=wna16_weight_key(w), act_key=None)
    ispp = experts.intermediate_size // ctx.tp
    skip: dict[str, str] = {}
    # int_wna16.py:154-155 FLASHINFER_TRTLLM: no zero points / bias
    if not w.symmetric:
        skip["FLASHINFER_TRTLLM"] = "zero points and bias are not supported"
    # int_wna16.py:194-205 TRITON: group activation ordering
    if w.actorder == "group":
        skip["TRITON"] = "group activation ordering is not supported"
    # int_wna16.py:210-227 + layers/quantization/utils/marlin_utils.py:356-387 (tile padding)
    marlin_ok = experts.hidden_size % 128 == 0 and (group <= 0 or ispp % group == 0)
    if not marlin_ok or group not in (-1, 32, 64, 128):
        skip["MARLIN"] = "Marlin not supported for this layer"
    if not feature(ctx.version, "moe_backend_oracle"):
        # 0.11 compressed_tensors_moe.py:112-131: Marlin MoE when supported, else Triton WNA16
        backends = ["MARLIN", "TRITON"]
    else:
        backends = prioritize_humming(candidates("wna16_moe", ctx.version), ctx.device.capability)
    return _walk("wna16", backends, ctx, layer, skip=skip)


def _int8(res: Resolution, ctx: Context) -> KernelChoice:
    """vLLM 0.33 compressed_tensors_moe_w8a8_int8.py, oracle/int8.py:37-175."""
    layer = Layer(weight_key="kInt8StaticChannelSym", act_key="kInt8DynamicTokenSym")
    if not feature(ctx.version, "moe_backend_oracle"):
        # vLLM 0.11 compressed_tensors_moe.py CompressedTensorsW8A8Int8MoEMethod.apply: the
        # Triton fused_experts, with no backend choice.
        where = "compressed_tensors/compressed_tensors_moe.py CompressedTensorsW8A8Int8MoEMethod"
        return _fixed(res, "TRITON", "TritonExperts", where, family="int8_moe")
    backends = prioritize_humming(candidates("int8_moe", ctx.version), ctx.device.capability)
    choice = _walk("int8", backends, ctx, layer)
    if choice.error:
        choice = replace(
            choice,
            error="No Int8 MoE backend supports the deployment configuration "
            "(weight_key=kInt8StaticChannelSym, activation_key=kInt8DynamicTokenSym).",
        )
    return choice


# vLLM 0.24/0.33 oracle/mxfp4.py _backend_activation_key: the activation each backend quantizes
# to (None = BF16 activations)
MXFP4_ACT_KEY = {
    "FLASHINFER_TRTLLM_MXFP4_MXFP8": "kMxfp8Dynamic",
    "FLASHINFER_CUTLASS_MXFP4_MXFP8": "kMxfp8Dynamic",
    "DEEPGEMM_MXFP4": "kFp8Dynamic128Sym",
}

# vLLM 0.24 compressed_tensors_moe_w4a4_mxfp4.py:193-198 (0.33: :226-231): logged by
# process_weights_after_loading on the Marlin path
FP4_MARLIN_WARNING = (
    "Your GPU does not have native support for FP4 computation but FP4 quantization is being "
    "used. Weight-only FP4 compression will be used leveraging the Marlin kernel. This may "
    "degrade performance for compute-heavy workloads."
)


def _ct_mxfp4(ctx: Context) -> KernelChoice:
    """compressed-tensors MXFP4 experts pick their kernel in the method, not through the oracle.

    vLLM 0.24 compressed_tensors_moe_w4a4_mxfp4.py:44-61 (0.33: :52-80)
    CompressedTensorsW4A4Mxfp4MoEMethod.__init__: CutlassExpertsMxfp4 (W4A4, activations
    quantized to MXFP4 whatever the checkpoint declares) where
    ops.mxfp4_experts_quant_supported(capability) holds, else MarlinExperts (weight-only); the
    mxfp4_backend attribute stays MARLIN either way. 0.33's extra branch for an explicit
    --moe-backend b12x / FlashInfer MoE-EP is not modelled. Measured on 0.24 (sm_90): MARLIN /
    MarlinExperts (tests/data/gpu_truth/*-MXFP4*).
    """
    source = (
        "model_executor/layers/quantization/compressed_tensors/compressed_tensors_moe/"
        "compressed_tensors_moe_w4a4_mxfp4.py CompressedTensorsW4A4Mxfp4MoEMethod.__init__"
    )
    layer = Layer(weight_key="kMxfp4Static", act_key="kMxfp4Dynamic")
    cutlass = check_row("CutlassExpertsMxfp4", ctx.version, ctx.device, ctx.env, layer)
    if cutlass.ok:
        return chosen(
            "mxfp4_moe",
            "CUTLASS_MXFP4_MXFP4",  # 0.33 oracle/mxfp4.py backend_to_kernel_cls name of the class
            ctx.version,
            [Step("CUTLASS_MXFP4_MXFP4", True)],
            experts="CutlassExpertsMxfp4",
            source=source,
            notes=(
                "vLLM logs 'Using CutlassExpertsMxfp4 for MXFP4 MoE'; its mxfp4_backend "
                "attribute still reads MARLIN",
            ),
        )
    steps = [Step("CUTLASS_MXFP4_MXFP4", False, cutlass.reason), Step("MARLIN", True)]
    choice = chosen("mxfp4_moe", "MARLIN", ctx.version, steps, experts="MarlinExperts")
    return replace(choice, warning=FP4_MARLIN_WARNING, source=source)


def _mxfp4(method: str, ctx: Context) -> KernelChoice:
    """MXFP4 experts of the mxfp4 quantization config.

    gpt-oss (GptOssMxfp4MoEMethod) walks select_mxfp4_moe_backend's list, BF16 activations
    only; other checkpoints (Mxfp4MoEMethod) walk select_deepseek_v4_mxfp4_moe_backend's, each
    backend with its own activation key (kernels.toml selection.mxfp4_moe / mxfp4_moe_generic
    for the lines). vLLM 0.11 had one rule for both (``moe_legacy.mxfp4_0_11``).
    """
    if not feature(ctx.version, "moe_backend_oracle"):
        return mxfp4_0_11(ctx)
    cap = ctx.device.capability
    if method == "Mxfp4MoEMethod":
        backends = prioritize_humming(candidates("mxfp4_moe_generic", ctx.version), cap)
        layer = Layer(weight_key="kMxfp4Static", act_key=None)
        return no_fp8_warning(_walk("mxfp4", backends, ctx, layer, act_keys=MXFP4_ACT_KEY))
    layer = Layer(weight_key="kMxfp4Static", act_key=None)
    backends = candidates("mxfp4_moe", ctx.version)
    if feature(ctx.version, "mxfp4_moe_marlin_first_sm12x") and cap is not None and cap // 10 == 12:
        # 0.33 oracle/mxfp4.py:426-434: consumer Blackwell runs Marlin ahead of the OAI Triton
        # kernels
        backends.remove("TRITON")
        backends.insert(backends.index("MARLIN") + 1, "TRITON")
    backends = prioritize_humming(backends, cap)
    return no_fp8_warning(_walk("mxfp4", backends, ctx, layer))


def _mxfp8(ctx: Context) -> KernelChoice:
    """vLLM 0.33 fused_moe/oracle/mxfp8.py:108-143 select_mxfp8_moe_backend: the first backend
    with an experts class supporting (kMxfp8Static, kMxfp8Dynamic); none raises ValueError."""
    layer = Layer(weight_key="kMxfp8Static", act_key="kMxfp8Dynamic")
    backends = prioritize_humming(candidates("mxfp8_moe", ctx.version), ctx.device.capability)
    choice = _walk("mxfp8", backends, ctx, layer)
    return replace(choice, error_type="ValueError") if choice.error else choice


def _unquantized(ctx: Context) -> KernelChoice:
    """vLLM 0.33 oracle/unquantized.py:50-100, 222-370."""
    layer = Layer(weight_key=None, act_key=None)
    cap = ctx.device.capability
    if not feature(ctx.version, "moe_backend_oracle"):
        return _walk("unquantized", ["TRITON"], ctx, layer)
    backends = candidates("unquantized_moe", ctx.version)
    if cap is not None and cap // 10 == 9:
        # unquantized.py:76-80: on Hopper FlashInfer BF16 MoE is slower than Triton
        for name in ("FLASHINFER_TRTLLM", "FLASHINFER_CUTLASS"):
            backends.append(backends.pop(backends.index(name)))
    return _walk("unquantized", backends, ctx, layer)
