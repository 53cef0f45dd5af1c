"""Fallback for architectures servecheck does not model: derive modules from tensor names.

The result is approximate by construction (checkpoint names, not vLLM's fused names), and the
report says so. It still lets quantization matching and the dtype audit run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from servecheck.core import index_in_name
from servecheck.model.inventory import (
    EMBEDDING,
    EXPERTS,
    LM_HEAD,
    NORM,
    OTHER,
    Experts,
    Inventory,
    Module,
    Param,
    Shard,
)
from servecheck.source.safetensors import TensorInfo

# Tensor suffixes that belong to a module rather than naming one.
PARAM_SUFFIXES = (
    "weight",
    "bias",
    "weight_scale",
    "weight_scale_inv",
    "weight_scale_2",
    "input_scale",
    "output_scale",
    "weight_packed",
    "weight_shape",
    "weight_zero_point",
    "weight_global_scale",
    "input_global_scale",
    "weight_g_idx",
    "qweight",
    "qzeros",
    "scales",
    "g_idx",
    "k_scale",
    "v_scale",
    "q_scale",
    "e_score_correction_bias",
    "SCB",
    "absmax",
    "quant_map",
    "blocks",
)
_EXPERT = re.compile(r"^(?P<prefix>.*\.experts)\.(?P<e>\d+)\.(?P<proj>[^.]+)$")
_LAYER = re.compile(r"\.layers\.(\d+)\.")


def module_prefix(tensor_name: str) -> tuple[str, str]:
    """Split a tensor name into (module prefix, parameter suffix)."""
    for suffix in sorted(PARAM_SUFFIXES, key=len, reverse=True):
        if tensor_name.endswith("." + suffix):
            return tensor_name[: -len(suffix) - 1], suffix
    head, _, tail = tensor_name.rpartition(".")
    return head, tail


def build_from_tensors(architecture: str, tensors: Mapping[str, TensorInfo]) -> Inventory:
    groups: dict[str, dict[str, TensorInfo]] = {}
    expert_groups: dict[str, dict[str, set[int]]] = {}
    expert_shapes: dict[str, tuple[int, int]] = {}
    for name, info in tensors.items():
        prefix, suffix = module_prefix(name)
        m = _EXPERT.match(prefix)
        if m:
            projs = expert_groups.setdefault(m["prefix"], {})
            projs.setdefault(m["proj"], set()).add(int(m["e"]))
            if suffix == "weight" and len(info.shape) == 2 and m["prefix"] not in expert_shapes:
                expert_shapes[m["prefix"]] = (info.shape[1], info.shape[0])
            continue
        groups.setdefault(prefix, {})[suffix] = info

    modules: list[Module] = []
    for prefix, params in groups.items():
        modules.append(_module_for(prefix, params))
    for prefix, projs in expert_groups.items():
        names = sorted(projs)
        count = max(len(v) for v in projs.values())
        hidden, inter = expert_shapes.get(prefix, (0, 0))
        gate, up, down = _expert_names(names)
        modules.append(
            Module(
                name=prefix,
                kind=EXPERTS,
                layer_class="RoutedExperts",
                layer=_layer(prefix),
                in_features=hidden,
                experts=Experts(count, hidden, inter, gate, up, down),
                tp_split="experts",
            )
        )
    modules.sort(key=lambda m: (m.layer if m.layer is not None else -1, m.name))
    return Inventory(
        architecture=architecture,
        modules=tuple(modules),
        packed_modules_mapping={},
        derived_from_tensors=True,
        notes=(
            f"{architecture} is not modelled by servecheck: modules were derived from the "
            "checkpoint's tensor names, so fused layers appear unfused and vLLM class names are "
            "guessed",
        ),
    )


def _expert_names(names: list[str]) -> tuple[str, str, str]:
    if {"w1", "w2", "w3"} <= set(names):
        return "w1", "w3", "w2"
    return "gate_proj", "up_proj", "down_proj"


def _layer(prefix: str) -> int | None:
    m = _LAYER.search(prefix + ".")
    return index_in_name(m.group(1)) if m else None


def _module_for(prefix: str, params: dict[str, TensorInfo]) -> Module:
    weight = params.get("weight") or params.get("weight_packed") or params.get("qweight")
    short = prefix.rsplit(".", 1)[-1]
    layer = _layer(prefix)
    if "embed" in short or short in ("wte", "tok_embeddings"):
        return Module(
            prefix,
            EMBEDDING,
            "VocabParallelEmbedding",
            layer,
            False,
            params=_params(params),
            tp_split="vocab",
        )
    if (weight is not None and len(weight.shape) == 1) or "norm" in short or "ln" in short:
        return Module(
            prefix, NORM, "RMSNorm", layer, False, params=_params(params), tp_split="replicated"
        )
    if weight is not None and len(weight.shape) == 2:
        # Packed quantized weights hide the true in_features; the header shape is what we have.
        out, inp = weight.shape
        kind = LM_HEAD if short in ("lm_head", "head") else OTHER
        cls = "ParallelLMHead" if kind == LM_HEAD else "Linear"
        return Module(
            prefix,
            kind,
            cls,
            layer,
            True,
            in_features=inp,
            shards=(Shard(prefix, out),),
            bias="bias" in params,
        )
    return Module(prefix, OTHER, "Parameter", layer, False, params=_params(params))


def _params(params: dict[str, TensorInfo]) -> tuple[Param, ...]:
    return tuple(Param(s, t.shape) for s, t in params.items())
