"""The checkpoint tensors each resolved module needs, by scheme (names, dtypes, shapes).

These mirror the parameters vLLM's scheme classes create in create_weights (vLLM 0.33
compressed_tensors/schemes/*.py, fp8.py Fp8LinearMethod) under their checkpoint names.
Scale shapes are given where the format fixes them; None means "not checked".

Specs are per checkpoint *prefix* (a shard of a fused module, a module's own name, or one
expert projection shared by all experts), so a 128-expert layer costs three spec lists, not
hundreds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

from servecheck.model.inventory import EXPERTS, Module
from servecheck.quant.resolve import Resolution

FLOAT_DTYPES = frozenset({"BF16", "F16", "F32"})
FP8 = frozenset({"F8_E4M3"})
SCALE_DTYPES = frozenset({"BF16", "F16", "F32"})


class Spec(NamedTuple):
    """One tensor a checkpoint prefix must provide: `{prefix}.{suffix}`."""

    suffix: str
    dtypes: frozenset[str] | None  # allowed dtypes, None = any
    shape: tuple[int, ...] | None  # exact shape, None = not checked
    role: str  # "weight", "scale", "bias", "param"


class Expected(NamedTuple):
    """A fully named expected tensor (see `module_tensors`)."""

    name: str
    dtypes: frozenset[str] | None
    shape: tuple[int, ...] | None
    role: str


def linear_specs(
    out_f: int, in_f: int, res: Resolution, bias: bool, weight_dtype: str | None = None
) -> list[Spec]:
    """Specs for one checkpoint linear (a shard of a fused module, or an expert projection)."""
    scheme = res.scheme
    w = res.weights
    out: list[Spec] = []
    if scheme is None:
        dtypes = frozenset({weight_dtype}) | FLOAT_DTYPES if weight_dtype else FLOAT_DTYPES
        out.append(Spec("weight", dtypes, (out_f, in_f), "weight"))
    elif scheme in ("W8A8Fp8", "W8A16Fp8"):
        out.append(Spec("weight", FP8, (out_f, in_f), "weight"))
        out.append(Spec("weight_scale", SCALE_DTYPES, _fp8_scale(res, out_f, in_f), "scale"))
        if res.inputs is not None and not res.inputs.dynamic:
            out.append(Spec("input_scale", SCALE_DTYPES, None, "scale"))
    elif scheme == "W8A8Int8":
        out.append(Spec("weight", frozenset({"I8"}), (out_f, in_f), "weight"))
        out.append(Spec("weight_scale", SCALE_DTYPES, None, "scale"))
        if res.inputs is not None and not res.inputs.dynamic:
            out.append(Spec("input_scale", SCALE_DTYPES, None, "scale"))
    elif scheme == "WNA16" and w is not None:
        pack = 32 // w.num_bits if 32 % w.num_bits == 0 else None
        packed_shape = (out_f, in_f // pack) if pack and in_f % pack == 0 else None
        out.append(Spec("weight_packed", frozenset({"I32"}), packed_shape, "weight"))
        groups = in_f // w.group_size if w.strategy == "group" and w.group_size else 1
        out.append(Spec("weight_scale", SCALE_DTYPES, (out_f, groups), "scale"))
        out.append(Spec("weight_shape", frozenset({"I64", "I32"}), (2,), "scale"))
        if not w.symmetric:
            out.append(Spec("weight_zero_point", None, None, "scale"))
    elif scheme == "W4A4Fp4":
        out.append(Spec("weight_packed", frozenset({"U8"}), (out_f, in_f // 2), "weight"))
        out.append(Spec("weight_scale", FP8, (out_f, in_f // 16), "scale"))
        out.append(Spec("weight_global_scale", frozenset({"F32"}), None, "scale"))
        if res.inputs is not None:
            out.append(Spec("input_global_scale", frozenset({"F32"}), None, "scale"))
    elif scheme in ("W4A4Mxfp4", "W4A8Mxfp4"):
        out.append(Spec("weight_packed", frozenset({"U8"}), (out_f, in_f // 2), "weight"))
        out.append(Spec("weight_scale", frozenset({"U8"}), (out_f, in_f // 32), "scale"))
    elif scheme == "W8A8Mxfp8":
        out.append(Spec("weight", FP8, (out_f, in_f), "weight"))
        out.append(Spec("weight_scale", frozenset({"U8"}), (out_f, in_f // 32), "scale"))
    elif scheme == "Fp8":
        out.append(Spec("weight", FP8, (out_f, in_f), "weight"))
        if res.block_size:
            bn, bk = res.block_size
            shape = (math.ceil(out_f / bn), math.ceil(in_f / bk))
            out.append(Spec("weight_scale_inv", SCALE_DTYPES, shape, "scale"))
        else:
            out.append(Spec("weight_scale", SCALE_DTYPES, None, "scale"))
    else:
        # Schemes not laid out tensor by tensor (AWQ, GPTQ, ...): nothing is checked.
        return []
    if bias:
        out.append(Spec("bias", None, (out_f,), "bias"))
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


def prefix_specs(m: Module, res: Resolution) -> dict[str, list[Spec]]:
    """Non-expert modules: checkpoint prefix -> specs (shards, plus the module's own params)."""
    out: dict[str, list[Spec]] = {}
    for shard in m.shards:
        out.setdefault(shard.ckpt_name, []).extend(
            linear_specs(shard.out_features, m.in_features, res, m.bias, m.weight_dtype)
        )
    for p in m.params:
        dtypes = frozenset({p.dtype}) | FLOAT_DTYPES if p.dtype else FLOAT_DTYPES
        out.setdefault(m.name, []).append(Spec(p.suffix, dtypes, p.shape, "param"))
    return out


def expert_specs(m: Module, res: Resolution) -> dict[str, list[Spec]]:
    """Expert modules: projection checkpoint name (gate_proj, w1, ...) -> specs, for any expert."""
    ex = m.experts
    assert ex is not None
    inter, hidden = ex.intermediate_size, ex.hidden_size
    return {
        ex.gate_name: linear_specs(inter, hidden, res, False),
        ex.up_name: linear_specs(inter, hidden, res, False),
        ex.down_name: linear_specs(hidden, inter, res, False),
    }


def module_tensors(m: Module, res: Resolution) -> Iterator[Expected]:
    """Every fully named tensor the checkpoint must hold for module `m` resolved as `res`."""
    if m.kind == EXPERTS and m.experts is not None:
        specs = expert_specs(m, res)
        for e in range(m.experts.num_experts):
            for proj, proj_specs in specs.items():
                prefix = f"{m.name}.{e}.{proj}"
                for s in proj_specs:
                    yield Expected(f"{prefix}.{s.suffix}", s.dtypes, s.shape, s.role)
        return
    for prefix, specs in prefix_specs(m, res).items():
        for s in specs:
            yield Expected(f"{prefix}.{s.suffix}", s.dtypes, s.shape, s.role)
