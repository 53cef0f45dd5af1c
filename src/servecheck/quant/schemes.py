"""vLLM's compressed-tensors scheme decision tree (linear layers and fused MoE).

Mirrors vLLM 0.33 compressed_tensors/compressed_tensors.py _get_scheme_from_parts and
compressed_tensors_moe/compressed_tensors_moe.py get_moe_method. `capability` is the target
GPU's major*10+minor, or None when unknown (vLLM's CPU platform reports None too).
"""

from __future__ import annotations

from dataclasses import dataclass

from servecheck.quant.args import QuantArgs
from servecheck.quant.compressed_tensors import ACTIVATION_FORMATS

# vLLM 0.33 schemes/*.py get_min_capability
MIN_CAPABILITY = {
    "W4A4Fp4": 75,
    "W4A8Mxfp4": 80,
    "W4A4Mxfp4": 80,
    "W8A8Mxfp8": 75,
    "W4A8Fp8": 90,
    "WNA8O8Int": 70,
    "WNA8Int": 75,
    "WNA4Int": 75,
    "WNA16": 75,
    "W8A8Fp8": 89,
    "W8A16Fp8": 75,
    "W8A8Int8": 75,
    "W4A8Int": 1,
}
# vLLM 0.33 compressed_tensors_wNa16.py WNA16_SUPPORTED_BITS
WNA16_BITS = (2, 3, 4, 5, 6, 7, 8)


@dataclass(frozen=True)
class Scheme:
    """A resolved compressed-tensors scheme: vLLM's class name without 'CompressedTensors'."""

    name: str
    weights: QuantArgs
    inputs: QuantArgs | None
    outputs: QuantArgs | None
    format: str | None

    @property
    def min_capability(self) -> int:
        return MIN_CAPABILITY[self.name]

    @property
    def vllm_class(self) -> str:
        return "CompressedTensors" + self.name

    def describe(self) -> str:
        acts = self.inputs.describe() if self.inputs else "none"
        return f"weights {self.weights.describe()}, activations {acts}"


class SchemeError(Exception):
    """vLLM raises while choosing a scheme. `kind` selects the finding."""

    def __init__(self, kind: str, text: str):
        super().__init__(text)
        self.kind, self.text = kind, text


# --- predicates (vLLM 0.33 CompressedTensorsConfig._is_*) ------------------------------------


def is_nvfp4(a: QuantArgs | None) -> bool:
    return (
        a is not None
        and a.strategy == "tensor_group"
        and a.is_float
        and a.num_bits == 4
        and a.group_size == 16
        and a.symmetric
    )


def is_mxfp4(a: QuantArgs | None) -> bool:
    return (
        a is not None
        and a.strategy == "group"
        and a.is_float
        and a.num_bits == 4
        and a.group_size == 32
        and a.symmetric
    )


def is_mxfp8(a: QuantArgs | None) -> bool:
    return (
        a is not None
        and a.strategy == "group"
        and a.is_float
        and a.num_bits == 8
        and a.group_size == 32
        and a.symmetric
        and a.scale_dtype in ("torch.uint8", "uint8")
    )


def is_mxfp4_w4a8_fp8(w: QuantArgs, i: QuantArgs | None) -> bool:
    return (
        is_mxfp4(w)
        and i is not None
        and i.is_float
        and i.num_bits == 8
        and not w.dynamic
        and bool(i.dynamic)
        and i.strategy in ("token", "group")
        and i.symmetric
    )


def is_fp8_w8a8(w: QuantArgs | None, i: QuantArgs | None) -> bool:
    if w is None or i is None:
        return False
    if not (
        w.is_float
        and i.is_float
        and w.symmetric
        and not w.dynamic
        and w.strategy in ("tensor", "channel", "block")
    ):
        return False
    if i.dynamic:
        return True
    return i.symmetric and i.strategy == "tensor"


def is_fp8_w8a16(w: QuantArgs | None) -> bool:
    return (
        w is not None
        and w.is_float
        and w.symmetric
        and not w.dynamic
        and w.strategy in ("tensor", "channel", "block")
    )


def is_fp8_w4a8(w: QuantArgs | None, i: QuantArgs | None) -> bool:
    if w is None or i is None or not w.is_int or not i.is_float:
        return False
    return (
        w.num_bits == 4
        and i.num_bits == 8
        and w.strategy == "group"
        and i.strategy == "token"
        and w.symmetric
        and i.symmetric
        and not w.dynamic
        and bool(i.dynamic)
    )


def is_wna16_group_channel(w: QuantArgs, i: QuantArgs | None) -> bool:
    return i is None and w.strategy in ("channel", "group") and not w.dynamic


def is_static_tensor_w8a8(w: QuantArgs, i: QuantArgs | None) -> bool:
    return (
        i is not None
        and w.num_bits == i.num_bits == 8
        and w.strategy in ("tensor", "channel")
        and i.strategy == "tensor"
        and w.symmetric
        and not w.dynamic
        and not i.dynamic
    )


def is_dynamic_token_w8a8(w: QuantArgs, i: QuantArgs | None) -> bool:
    return (
        i is not None
        and w.num_bits == i.num_bits == 8
        and w.strategy in ("tensor", "channel")
        and i.strategy == "token"
        and w.symmetric
        and not w.dynamic
        and bool(i.dynamic)
    )


def is_dynamic_token_w4a8_int(w: QuantArgs, i: QuantArgs | None) -> bool:
    return (
        i is not None
        and w.is_int
        and i.is_int
        and w.num_bits == 4
        and i.num_bits == 8
        and w.strategy in ("group", "channel")
        and i.strategy == "token"
        and w.symmetric
        and not w.dynamic
        and bool(i.dynamic)
    )


def is_wna8o8_int(w: QuantArgs, i: QuantArgs | None, o: QuantArgs | None, fmt: str | None) -> bool:
    def static_int8_tensor(a: QuantArgs | None) -> bool:
        return (
            a is not None
            and a.is_int
            and a.strategy == "tensor"
            and a.num_bits == 8
            and not a.dynamic
        )

    return (
        fmt in ("pack-quantized", "int-quantized")
        and w.strategy in ("channel", "group")
        and w.is_int
        and not w.dynamic
        and static_int8_tensor(i)
        and static_int8_tensor(o)
    )


def is_wnam_int(w: QuantArgs, i: QuantArgs | None, fmt: str | None) -> bool:
    return (
        i is not None
        and fmt == "pack-quantized"
        and w.strategy in ("channel", "group")
        and w.is_int
        and not w.dynamic
        and i.is_int
        and i.symmetric
        and bool(i.dynamic)
        and i.strategy in ("token", "group")
    )


# --- linear layers -----------------------------------------------------------------------------


def linear_scheme(
    w: QuantArgs,
    i: QuantArgs | None,
    o: QuantArgs | None,
    fmt: str | None,
    capability: int | None,
    layer: str,
) -> Scheme:
    """vLLM 0.33 CompressedTensorsConfig._get_scheme_from_parts (CUDA/CPU branches)."""

    def s(name: str) -> Scheme:
        return Scheme(name, w, i, o, fmt)

    if is_nvfp4(w):
        if i is None:
            return s("W4A4Fp4")  # use_a16=True: NVFP4A16
        if not is_nvfp4(i):
            raise SchemeError(
                "nvfp4-input",
                "For NVFP4 weights, input quantization must also be NVFP4 format, None for "
                "NVFP4A16",
            )
        return s("W4A4Fp4")
    if is_mxfp4_w4a8_fp8(w, i):
        return s("W4A8Mxfp4")
    if is_mxfp4(w):
        return s("W4A4Mxfp4")
    if is_mxfp8(w):
        return s("W8A8Mxfp8")
    # _is_fp8_w4a8_sm90: _check_scheme_supported(90, match_exact=True) is False without a GPU
    if capability == 90 and is_fp8_w4a8(w, i):
        return s("W4A8Fp8")
    if is_wna8o8_int(w, i, o, fmt):
        return s("WNA8O8Int")
    if is_wnam_int(w, i, fmt) and i is not None and i.num_bits == 8:
        return s("WNA8Int")
    if is_wnam_int(w, i, fmt) and i is not None and i.num_bits == 4:
        return s("WNA4Int")
    if is_wna16_group_channel(w, i) and fmt == "pack-quantized":
        return s("WNA16")
    if fmt in ACTIVATION_FORMATS:
        if is_fp8_w8a8(w, i):
            # _check_scheme_supported(89, error=False): True when the capability is unknown.
            return s("W8A8Fp8" if capability is None or capability >= 89 else "W8A16Fp8")
        if is_fp8_w8a16(w):
            return s("W8A16Fp8")
        if is_static_tensor_w8a8(w, i) or is_dynamic_token_w8a8(w, i):
            return s("W8A8Int8")
        if is_dynamic_token_w4a8_int(w, i):
            return s("W4A8Int")
    raise SchemeError(
        "no-scheme",
        f"No compressed-tensors compatible scheme was found for layer_name={layer!r}, "
        f"weight_quant={w.describe()}, input_quant={i.describe() if i else None}, "
        f"output_quant={o.describe() if o else None}, format={fmt!r}",
    )


# --- fused MoE ---------------------------------------------------------------------------------


def moe_method(w: QuantArgs, i: QuantArgs | None, fmt: str | None, capability: int | None) -> str:
    """vLLM 0.33 CompressedTensorsMoEMethod.get_moe_method dispatch: the method class name."""
    if is_mxfp4_w4a8_fp8(w, i):
        return "CompressedTensorsW4A8Mxfp4MoEMethod"
    if is_mxfp4(w):
        return "CompressedTensorsW4A4Mxfp4MoEMethod"
    if is_mxfp8(w):
        return "CompressedTensorsW8A8Mxfp8MoEMethod"
    if is_wna16_group_channel(w, i):
        if w.num_bits not in WNA16_BITS or fmt != "pack-quantized":
            raise SchemeError(
                "moe",
                "For Fused MoE layers, only format: pack-quantized and bits: [2, 3, 4, 5, 6, 7, "
                f"8] is supported but got format: pack-quantized and bits: {w.num_bits}",
            )
        return "CompressedTensorsWNA16MoEMethod"
    if is_nvfp4(w):
        if not (is_nvfp4(i) or i is None):
            raise SchemeError(
                "nvfp4-input",
                "For NVFP4 weights, input quantization must also be NVFP4 format or None for "
                f"NVFP4A16, found {i.describe() if i else None}",
            )
        return "CompressedTensorsW4A4Nvfp4MoEMethod"
    if is_fp8_w8a8(w, i):
        return "CompressedTensorsW8A8Fp8MoEMethod"
    if is_dynamic_token_w8a8(w, i):
        return "CompressedTensorsW8A8Int8MoEMethod"
    if is_fp8_w4a8(w, i):
        return "CompressedTensorsW4A8Fp8MoEMethod"
    if is_dynamic_token_w4a8_int(w, i):
        return "CompressedTensorsW4A8Int8MoEMethod"
    raise SchemeError(
        "moe",
        f"Unsupported FusedMoe scheme: {w.describe()}, {i.describe() if i else None}",
    )


# vLLM 0.33 compressed_tensors_moe/*.py: each MoE method class and the scheme name of the
# linear layers with the same weights (the audit and the kernel selection key on it)
MOE_METHOD_SCHEMES = {
    "CompressedTensorsW4A8Mxfp4MoEMethod": "W4A8Mxfp4",
    "CompressedTensorsW4A4Mxfp4MoEMethod": "W4A4Mxfp4",
    "CompressedTensorsW8A8Mxfp8MoEMethod": "W8A8Mxfp8",
    "CompressedTensorsWNA16MoEMethod": "WNA16",
    "CompressedTensorsWNA16MarlinMoEMethod": "WNA16",
    "CompressedTensorsW4A4Nvfp4MoEMethod": "W4A4Fp4",
    "CompressedTensorsW8A8Fp8MoEMethod": "W8A8Fp8",
    "CompressedTensorsW8A8Int8MoEMethod": "W8A8Int8",
    "CompressedTensorsW4A8Fp8MoEMethod": "W4A8Fp8",
    "CompressedTensorsW4A8Int8MoEMethod": "W4A8Int8",
}


def moe_scheme(method: str) -> str:
    """The scheme name of a MoE method class (its own name without the affixes otherwise)."""
    return MOE_METHOD_SCHEMES.get(
        method, method.removeprefix("CompressedTensors").removesuffix("MoEMethod")
    )


def wna16_marlin_moe_supported(hidden: int, intermediate_per_rank: int, w: QuantArgs) -> bool:
    """vLLM 0.24 quantization/utils/marlin_utils.py check_moe_marlin_supports_layer (CUDA):
    gate_up (n, k) = (2 x intermediate, hidden), down = (hidden, intermediate)."""
    group = w.group_size if w.strategy == "group" and w.group_size else -1
    return (
        hidden % 128 == 0
        and intermediate_per_rank % max(64, group) == 0
        and group in (-1, 32, 64, 128)
    )
