"""Parts of vision encoders (ViT blocks, patch embeddings, norms) in vLLM's naming, shared by
the tower templates in model/arch/towers.py.

Every module built here has a kind starting with "tower." so the planner can tell the towers
from the language model. Sizes are unsharded; linears carry their checkpoint shards the way
vLLM's loaders stack them (q/k/v into qkv_proj, gate/up into gate_up_proj).
"""

from __future__ import annotations

from typing import Any

from servecheck.model.inventory import Module, Param, linear

TOWER_QKV = "tower.qkv"
TOWER_O = "tower.out_proj"
TOWER_MLP = "tower.mlp"
TOWER_PARAM = "tower.param"
PROJECTOR = "tower.projector"


def num(cfg: dict[str, Any], *keys: str, default: int = 0) -> int:
    """The first integer the config holds under one of `keys`."""
    for key in keys:
        value = cfg.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return default


def param(name: str, *params: Param, ckpt: str | None = None) -> Module:
    """Plain parameters (norms, embeddings, convolutions), never quantized. `ckpt`: the
    checkpoint prefix when the parameter sits directly on its parent (vision_model.
    class_embedding: name "vision_model.class_embedding", ckpt "vision_model")."""
    return Module(
        name=name,
        kind=TOWER_PARAM,
        layer_class="Parameter",
        receives_quant_config=False,
        params=params,
        ckpt_name=ckpt,
        tp_split="replicated",
    )


def norm(name: str, size: int, bias: bool = True) -> Module:
    """LayerNorm (weight and bias) or RMSNorm (weight only)."""
    params = (Param("weight", (size,)),)
    if bias:
        params += (Param("bias", (size,)),)
    return param(name, *params)


def conv(name: str, out_ch: int, in_ch: int, kernel: tuple[int, ...], bias: bool) -> Module:
    """A patch convolution (vLLM's Conv2dLayer / Conv3dLayer hold the torch weight shape)."""
    params = (Param("weight", (out_ch, in_ch, *kernel)),)
    if bias:
        params += (Param("bias", (out_ch,)),)
    return param(name, *params)


def lin(
    name: str,
    n_in: int,
    n_out: int,
    *,
    kind: str = TOWER_MLP,
    cls: str = "ColumnParallelLinear",
    bias: bool = True,
    ckpt: str | None = None,
) -> Module:
    split = {"RowParallelLinear": "row", "ReplicatedLinear": "replicated", "Linear": "replicated"}
    return linear(
        name,
        kind,
        cls,
        n_in,
        [(ckpt or name, n_out)],
        bias=bias,
        tp_split=split.get(cls, "column"),
        receives_quant_config=cls != "Linear",
    )


def attention(
    prefix: str,
    h: int,
    *,
    qkv: tuple[str, ...] = ("q_proj", "k_proj", "v_proj"),
    qkv_name: str = "qkv_proj",
    o_name: str = "o_proj",
    bias: bool = True,
    o_bias: bool | None = None,
) -> list[Module]:
    """Multi-head self-attention with as many key/value heads as query heads: one fused
    QKVParallelLinear (stored as q/k/v or already fused) and the output projection."""
    shards = (
        [(f"{prefix}.{qkv[0]}", 3 * h)] if len(qkv) == 1 else [(f"{prefix}.{n}", h) for n in qkv]
    )
    return [
        linear(
            f"{prefix}.{qkv_name}",
            TOWER_QKV,
            "QKVParallelLinear",
            h,
            shards,
            bias=bias,
            tp_split="qkv",
        ),
        lin(
            f"{prefix}.{o_name}",
            h,
            h,
            kind=TOWER_O,
            cls="RowParallelLinear",
            bias=bias if o_bias is None else o_bias,
        ),
    ]


def mlp(
    prefix: str,
    h: int,
    inter: int,
    *,
    names: tuple[str, str] = ("fc1", "fc2"),
    bias: bool = True,
    kind: str = TOWER_MLP,
    out: int | None = None,
) -> list[Module]:
    """Two linears: h -> inter (column) and inter -> out (row; out defaults to h)."""
    return [
        lin(f"{prefix}.{names[0]}", h, inter, kind=kind, bias=bias),
        lin(
            f"{prefix}.{names[1]}",
            inter,
            h if out is None else out,
            kind=kind,
            cls="RowParallelLinear",
            bias=bias,
        ),
    ]


def gated_mlp(
    prefix: str,
    h: int,
    inter: int,
    *,
    bias: bool = True,
    kind: str = TOWER_MLP,
    out: int | None = None,
) -> list[Module]:
    """gate_up_proj (stored as gate_proj and up_proj) and down_proj."""
    return [
        linear(
            f"{prefix}.gate_up_proj",
            kind,
            "MergedColumnParallelLinear",
            h,
            [(f"{prefix}.gate_proj", inter), (f"{prefix}.up_proj", inter)],
            bias=bias,
        ),
        lin(
            f"{prefix}.down_proj",
            inter,
            h if out is None else out,
            kind=kind,
            cls="RowParallelLinear",
            bias=bias,
        ),
    ]


def without_quant(modules: list[Module]) -> list[Module]:
    """The same modules built without the quantization config (vLLM passes quant_config=None
    to some towers, e.g. vLLM 0.33 models/mllama4.py Llama4VisionModel)."""
    from dataclasses import replace

    return [replace(m, receives_quant_config=False) for m in modules]
