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
    scheme = None if res.online else res.scheme  # quantized while loading: stored unquantized
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
    elif scheme is not None and scheme.startswith("Quark"):
        out.extend(_quark(scheme, out_f, in_f, res))
    elif scheme in ESTIMATED_LAYOUTS and w is not None:
        out.extend(ESTIMATED_LAYOUTS[scheme](out_f, in_f, w.num_bits, w.group_size or in_f))
    else:
        return []
    if bias:
        out.append(Spec("bias", None, (out_f,), "bias"))
    return out


def _quark(scheme: str, out_f: int, in_f: int, res: Resolution) -> list[Spec]:
    """vLLM 0.33 quark/schemes/*.py create_weights: the parameters a Quark layer loads (the
    export's names: weight, weight_scale, input_scale, plus weight_scale_2 for NVFP4)."""
    static_input = res.inputs is not None and not res.inputs.dynamic
    specs: list[Spec] = []
    if scheme in ("QuarkW8A8Fp8", "QuarkW8A8Fp8PerBlock"):
        block = scheme.endswith("PerBlock")
        scale = (math.ceil(out_f / 128), math.ceil(in_f / 128)) if block else None
        specs = [Spec("weight", FP8, (out_f, in_f), "weight"),
                 Spec("weight_scale", SCALE_DTYPES, scale, "scale")]  # fmt: skip
    elif scheme == "QuarkW8A8Int8":
        specs = [Spec("weight", frozenset({"I8"}), (out_f, in_f), "weight"),
                 Spec("weight_scale", SCALE_DTYPES, None, "scale")]  # fmt: skip
        if static_input and res.inputs is not None and not res.inputs.symmetric:
            specs.append(Spec("input_zero_point", None, None, "scale"))
    elif scheme in ("QuarkOCP_MX", "QuarkW4A4MXFP4", "QuarkW4A8_MXFP4_FP8"):
        w = res.weights
        packed = (out_f, in_f) if w is not None and w.num_bits == 8 else (out_f, in_f // 2)
        specs = [Spec("weight", None, packed, "weight"),
                 Spec("weight_scale", frozenset({"U8"}), (out_f, in_f // 32), "scale")]  # fmt: skip
    elif scheme == "QuarkNVFP4":
        specs = [Spec("weight", frozenset({"U8"}), (out_f, in_f // 2), "weight"),
                 Spec("weight_scale", FP8, (out_f, in_f // 16), "scale"),
                 Spec("weight_scale_2", None, None, "scale"),
                 Spec("input_scale_2", None, None, "scale")]  # fmt: skip
    else:  # W4A16 INT4 (AWQ-style packing): names only
        specs = [Spec("weight", None, None, "weight"), Spec("weight_scale", None, None, "scale")]
        if res.weights is not None and not res.weights.symmetric:
            specs.append(Spec("weight_zero_point", None, None, "scale"))
    if static_input:
        specs.append(Spec("input_scale", SCALE_DTYPES, None, "scale"))
    return specs


def _gptq(out_f: int, in_f: int, bits: int, group: int) -> list[Spec]:
    # AutoGPTQ layout: qweight [in*bits/32, out], qzeros [in/g, out*bits/32], scales [in/g, out]
    return [
        Spec("qweight", frozenset({"I32"}), (in_f * bits // 32, out_f), "estimate"),
        Spec("qzeros", frozenset({"I32"}), (in_f // group, out_f * bits // 32), "estimate"),
        Spec("scales", frozenset({"F16"}), (in_f // group, out_f), "estimate"),
        Spec("g_idx", frozenset({"I32"}), (in_f,), "estimate"),
    ]


def _awq(out_f: int, in_f: int, bits: int, group: int) -> list[Spec]:
    # AutoAWQ layout: qweight [in, out*bits/32], qzeros [in/g, out*bits/32], scales [in/g, out]
    return [
        Spec("qweight", frozenset({"I32"}), (in_f, out_f * bits // 32), "estimate"),
        Spec("qzeros", frozenset({"I32"}), (in_f // group, out_f * bits // 32), "estimate"),
        Spec("scales", frozenset({"F16"}), (in_f // group, out_f), "estimate"),
    ]


def _modelopt_fp8(out_f: int, in_f: int, bits: int, group: int) -> list[Spec]:
    return [
        Spec("weight", FP8, (out_f, in_f), "estimate"),
        Spec("weight_scale", frozenset({"F32"}), (), "estimate"),
        Spec("input_scale", frozenset({"F32"}), (), "estimate"),
    ]


def _modelopt_fp4(out_f: int, in_f: int, bits: int, group: int) -> list[Spec]:
    return [
        Spec("weight", frozenset({"U8"}), (out_f, in_f // 2), "estimate"),
        Spec("weight_scale", FP8, (out_f, in_f // 16), "estimate"),
        Spec("weight_scale_2", frozenset({"F32"}), (), "estimate"),
        Spec("input_scale", frozenset({"F32"}), (), "estimate"),
    ]


def _bnb(out_f: int, in_f: int, bits: int, group: int) -> list[Spec]:
    # transformers' bitsandbytes serialization: the weight itself is checked (vLLM 0.27's
    # bitsandbytes loader needs the quantized weight and its quant state for every layer it
    # built with the bitsandbytes methods, experts included); the quant state's layout varies
    if bits == 8:
        return [
            Spec("weight", frozenset({"I8"}), (out_f, in_f), "weight"),
            Spec("SCB", frozenset({"F32"}), (out_f,), "estimate"),
        ]
    return [
        Spec("weight", frozenset({"U8"}), (out_f * in_f // 2, 1), "weight"),
        Spec("absmax", frozenset({"F32"}), (out_f * in_f // 64,), "estimate"),
    ]


# Layouts of methods servecheck sizes but does not audit tensor by tensor: used for bytes when
# only a config is given (role "estimate": never reported missing or mismatched).
ESTIMATED_LAYOUTS = {
    "GPTQ": _gptq,
    "GPTQ_MARLIN": _gptq,
    "AWQ": _awq,
    "AWQ_MARLIN": _awq,
    "MODELOPT": _modelopt_fp8,
    "MODELOPT_FP4": _modelopt_fp4,
    "BITSANDBYTES": _bnb,
}


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
        specs = linear_specs(shard.out_features, m.in_features, res, m.bias, m.weight_dtype)
        if m.upcast_fp8 and res.scheme is None:
            # an FP8 block-quantized copy the loader dequantizes is accepted too
            specs = [
                s._replace(dtypes=s.dtypes | FP8) if s.role == "weight" and s.dtypes else s
                for s in specs
            ] + [Spec("weight_scale_inv", None, None, "estimate")]
        out.setdefault(shard.ckpt_name, []).extend(specs)
    for p in m.params:
        dtypes = frozenset({p.dtype}) | FLOAT_DTYPES if p.dtype else FLOAT_DTYPES
        out.setdefault(m.ckpt_prefix, []).append(Spec(p.suffix, dtypes, p.shape, "param"))
    if m.kind == EXPERTS and m.experts is not None and m.experts.fused_layout == "gpt_oss":
        out[m.ckpt_prefix] = gpt_oss_expert_specs(m, res)
    elif m.kind == EXPERTS and m.experts is not None and m.experts.fused_layout:
        out.update(fused_expert_specs(m, res))
    return out


def fused_expert_specs(m: Module, res: Resolution) -> dict[str, list[Spec]]:
    """Experts stored as one 3-D tensor per projection. Llama 4 (vLLM 0.33 models/llama4.py
    load_moe_expert_weights): experts.gate_up_proj [E, H, 2I] and experts.down_proj [E, I, H];
    Granite MoE (granitemoe.py hf_to_vllm_mapper, granitemoehybrid.py load_weights):
    input_linear.weight [E, 2I, H] and output_linear.weight [E, H, I] beside the experts.
    Quantized fused layouts (ModelOpt's per-tensor scales) are sized from the headers."""
    ex = m.experts
    assert ex is not None
    e, h, i = ex.num_experts, ex.hidden_size, ex.intermediate_size
    up = 2 * i if ex.gated else i
    dtypes = FLOAT_DTYPES if res.scheme is None else None
    if ex.fused_layout == "granite":
        parent = m.ckpt_prefix.rpartition(".")[0]
        return {
            f"{parent}.input_linear": [Spec("weight", dtypes, (e, up, h), "weight")],
            f"{parent}.output_linear": [Spec("weight", dtypes, (e, h, i), "weight")],
        }
    specs = [
        Spec("gate_up_proj", dtypes, (e, h, up), "weight"),
        Spec("down_proj", dtypes, (e, i, h), "weight"),
    ]
    if res.scheme is not None:
        specs += [
            Spec(f"{proj}_{kind}", None, None, "estimate")
            for proj in ("gate_up_proj", "down_proj")
            for kind in ("weight_scale", "input_scale")
        ]
    return {m.ckpt_prefix: specs}


def gpt_oss_expert_specs(m: Module, res: Resolution) -> list[Spec]:
    """gpt-oss stores all experts fused: MXFP4 blocks of 32 values (16 bytes) with one U8
    exponent scale per block, or plain [E, in, out] tensors when unquantized (vLLM 0.33
    models/gpt_oss.py hf_to_vllm_mapper and GptOssMxfp4MoEMethod.create_weights)."""
    ex = m.experts
    assert ex is not None
    e, h, i = ex.num_experts, ex.hidden_size, ex.intermediate_size
    bias = [
        Spec("gate_up_proj_bias", FLOAT_DTYPES, (e, 2 * i), "bias"),
        Spec("down_proj_bias", FLOAT_DTYPES, (e, h), "bias"),
    ]
    if res.scheme is None or res.online:
        return [
            Spec("gate_up_proj", FLOAT_DTYPES, (e, h, 2 * i), "weight"),
            Spec("down_proj", FLOAT_DTYPES, (e, i, h), "weight"),
            *bias,
        ]
    u8 = frozenset({"U8"})
    return [
        Spec("gate_up_proj_blocks", u8, (e, 2 * i, h // 32, 16), "weight"),
        Spec("gate_up_proj_scales", u8, (e, 2 * i, h // 32), "scale"),
        Spec("down_proj_blocks", u8, (e, h, i // 32, 16), "weight"),
        Spec("down_proj_scales", u8, (e, h, i // 32), "scale"),
        *bias,
    ]


def expert_specs(m: Module, res: Resolution) -> dict[str, list[Spec]]:
    """Expert modules: projection checkpoint name (gate_proj, w1, ...) -> specs, for any expert."""
    ex = m.experts
    assert ex is not None
    inter, hidden = ex.intermediate_size, ex.hidden_size
    # experts without a gate name their up projection twice (one entry)
    return {
        ex.gate_name: linear_specs(inter, hidden, res, False),
        ex.up_name: linear_specs(inter, hidden, res, False),
        ex.down_name: linear_specs(hidden, inter, res, False),
    }


def per_expert(m: Module) -> bool:
    """Whether the module's experts are stored one tensor set per expert."""
    return m.kind == EXPERTS and m.experts is not None and m.experts.fused_layout is None


def module_tensors(m: Module, res: Resolution) -> Iterator[Expected]:
    """Every fully named tensor the checkpoint must hold for module `m` resolved as `res`."""
    if per_expert(m):
        assert m.experts is not None
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
