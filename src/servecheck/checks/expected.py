"""The checkpoint tensors each resolved module needs, by scheme (names, dtypes, shapes).

These mirror the parameters vLLM's scheme classes create in create_weights (vLLM 0.33
compressed_tensors/schemes/*.py, fp8.py Fp8LinearMethod) under their checkpoint names.
Scale shapes are given where the format fixes them; None means "not checked".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from servecheck.model.inventory import EXPERTS, Module
from servecheck.quant.resolve import Resolution

FLOAT_DTYPES = frozenset({"BF16", "F16", "F32"})
FP8 = frozenset({"F8_E4M3"})
SCALE_DTYPES = frozenset({"BF16", "F16", "F32"})


@dataclass(frozen=True)
class Expected:
    """One tensor a module's checkpoint side must provide."""

    name: str
    dtypes: frozenset[str] | None  # allowed dtypes, None = any
    shape: tuple[int, ...] | None  # exact shape, None = not checked
    role: str  # "weight", "scale", "bias", "param"


def linear_tensors(
    prefix: str, out_f: int, in_f: int, res: Resolution, bias: bool, weight_dtype: str | None = None
) -> list[Expected]:
    """Tensors for one checkpoint linear (a shard of a fused module, or an expert projection)."""
    scheme = res.scheme
    w = res.weights
    out: list[Expected] = []
    if scheme is None:
        dtypes = frozenset({weight_dtype}) | FLOAT_DTYPES if weight_dtype else FLOAT_DTYPES
        out.append(Expected(f"{prefix}.weight", dtypes, (out_f, in_f), "weight"))
    elif scheme in ("W8A8Fp8", "W8A16Fp8"):
        out.append(Expected(f"{prefix}.weight", FP8, (out_f, in_f), "weight"))
        out.append(
            Expected(f"{prefix}.weight_scale", SCALE_DTYPES, _fp8_scale(res, out_f, in_f), "scale")
        )
        if res.inputs is not None and not res.inputs.dynamic:
            out.append(Expected(f"{prefix}.input_scale", SCALE_DTYPES, None, "scale"))
    elif scheme == "W8A8Int8":
        out.append(Expected(f"{prefix}.weight", frozenset({"I8"}), (out_f, in_f), "weight"))
        out.append(Expected(f"{prefix}.weight_scale", SCALE_DTYPES, None, "scale"))
        if res.inputs is not None and not res.inputs.dynamic:
            out.append(Expected(f"{prefix}.input_scale", SCALE_DTYPES, None, "scale"))
    elif scheme == "WNA16" and w is not None:
        pack = 32 // w.num_bits if 32 % w.num_bits == 0 else None
        packed_shape = (out_f, in_f // pack) if pack and in_f % pack == 0 else None
        out.append(Expected(f"{prefix}.weight_packed", frozenset({"I32"}), packed_shape, "weight"))
        groups = in_f // w.group_size if w.strategy == "group" and w.group_size else 1
        out.append(Expected(f"{prefix}.weight_scale", SCALE_DTYPES, (out_f, groups), "scale"))
        out.append(Expected(f"{prefix}.weight_shape", frozenset({"I64", "I32"}), (2,), "scale"))
        if not w.symmetric:
            out.append(Expected(f"{prefix}.weight_zero_point", None, None, "scale"))
    elif scheme == "W4A4Fp4":
        out.append(
            Expected(f"{prefix}.weight_packed", frozenset({"U8"}), (out_f, in_f // 2), "weight")
        )
        out.append(Expected(f"{prefix}.weight_scale", FP8, (out_f, in_f // 16), "scale"))
        out.append(Expected(f"{prefix}.weight_global_scale", frozenset({"F32"}), None, "scale"))
        if res.inputs is not None:
            out.append(Expected(f"{prefix}.input_global_scale", frozenset({"F32"}), None, "scale"))
    elif scheme in ("W4A4Mxfp4", "W4A8Mxfp4"):
        out.append(
            Expected(f"{prefix}.weight_packed", frozenset({"U8"}), (out_f, in_f // 2), "weight")
        )
        out.append(
            Expected(f"{prefix}.weight_scale", frozenset({"U8"}), (out_f, in_f // 32), "scale")
        )
    elif scheme == "W8A8Mxfp8":
        out.append(Expected(f"{prefix}.weight", FP8, (out_f, in_f), "weight"))
        out.append(
            Expected(f"{prefix}.weight_scale", frozenset({"U8"}), (out_f, in_f // 32), "scale")
        )
    elif scheme == "Fp8":
        out.append(Expected(f"{prefix}.weight", FP8, (out_f, in_f), "weight"))
        if res.block_size:
            bn, bk = res.block_size
            shape = (math.ceil(out_f / bn), math.ceil(in_f / bk))
            out.append(Expected(f"{prefix}.weight_scale_inv", SCALE_DTYPES, shape, "scale"))
        else:
            out.append(Expected(f"{prefix}.weight_scale", SCALE_DTYPES, None, "scale"))
    else:
        # Schemes we do not lay out tensor by tensor: require only that something is stored.
        return []
    if bias:
        out.append(Expected(f"{prefix}.bias", None, (out_f,), "bias"))
    return out


def _fp8_scale(res: Resolution, out_f: int, in_f: int) -> tuple[int, ...] | None:
    w = res.weights
    if w is None:
        return None
    if w.strategy == "channel":
        return (out_f, 1)
    if w.strategy == "block" and w.block_structure:
        bn, bk = w.block_structure
        return (math.ceil(out_f / bn), math.ceil(in_f / bk))
    return None  # per-tensor: [1] or [] depending on the exporter


def module_tensors(m: Module, res: Resolution) -> list[Expected]:
    """Every tensor the checkpoint must hold for module `m` resolved as `res`."""
    out: list[Expected] = []
    if m.kind == EXPERTS and m.experts is not None:
        ex = m.experts
        for e in range(ex.num_experts):
            gate, up, down = ex.ckpt_names(m.name, e)
            out += linear_tensors(gate, ex.intermediate_size, ex.hidden_size, res, False)
            out += linear_tensors(up, ex.intermediate_size, ex.hidden_size, res, False)
            out += linear_tensors(down, ex.hidden_size, ex.intermediate_size, res, False)
        return out
    for shard in m.shards:
        out += linear_tensors(
            shard.ckpt_name, shard.out_features, m.in_features, res, m.bias, m.weight_dtype
        )
    for p in m.params:
        dtypes = frozenset({p.dtype}) | FLOAT_DTYPES if p.dtype else FLOAT_DTYPES
        out.append(Expected(f"{m.name}.{p.suffix}", dtypes, p.shape, "param"))
    return out
