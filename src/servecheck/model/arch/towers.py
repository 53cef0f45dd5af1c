"""Vision towers and their projectors, as vLLM builds them beside the language model.

A record's `towers` list holds one table per tower: its vLLM `prefix`, its `template` (the
vLLM encoder file it mirrors) and the key of its config (`config`, default "vision_config").
Sizes come from that config. Tower modules have kind "tower.*", so the planner can leave them
out when every modality is limited to 0 (vLLM then builds the language model only).
"""

from __future__ import annotations

from typing import Any

from servecheck.model.config import ModelConfig
from servecheck.model.inventory import Module, Param, linear
from servecheck.model.records import Record

TOWER_QKV = "tower.qkv"
TOWER_O = "tower.out_proj"
TOWER_MLP = "tower.mlp"
TOWER_PARAM = "tower.param"
PROJECTOR = "tower.projector"


def _int(cfg: dict[str, Any], *keys: str, default: int = 0) -> int:
    for key in keys:
        value = cfg.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return default


def _param(name: str, params: tuple[Param, ...]) -> Module:
    return Module(
        name=name,
        kind=TOWER_PARAM,
        layer_class="Parameter",
        receives_quant_config=False,
        params=params,
        tp_split="replicated",
    )


def _lin(name: str, kind: str, cls: str, n_in: int, shards: list[tuple[str, int]], **kw: Any):
    return linear(name, kind, cls, n_in, shards, **kw)


def _siglip(prefix: str, vc: dict[str, Any], text_hidden: int) -> list[Module]:
    # vLLM 0.33 models/siglip.py SiglipVisionModel (+ gemma3_mm.py Gemma3MultiModalProjector)
    h = _int(vc, "hidden_size", default=1152)
    inter = _int(vc, "intermediate_size", default=4304)
    layers = _int(vc, "num_hidden_layers", default=27)
    patch, image = _int(vc, "patch_size", default=14), _int(vc, "image_size", default=896)
    base = f"{prefix}.vision_model"
    out = [
        _param(
            f"{base}.embeddings.patch_embedding",
            (Param("weight", (h, 3, patch, patch)), Param("bias", (h,))),
        ),
        _param(
            f"{base}.embeddings.position_embedding",
            (Param("weight", ((image // patch) ** 2, h)),),
        ),
    ]
    for j in range(layers):
        p = f"{base}.encoder.layers.{j}"
        out += [
            _param(f"{p}.layer_norm1", (Param("weight", (h,)), Param("bias", (h,)))),
            _lin(
                f"{p}.self_attn.qkv_proj",
                TOWER_QKV,
                "QKVParallelLinear",
                h,
                [(f"{p}.self_attn.{n}_proj", h) for n in "qkv"],
                bias=True,
                tp_split="qkv",
            ),
            _lin(
                f"{p}.self_attn.out_proj",
                TOWER_O,
                "RowParallelLinear",
                h,
                [(f"{p}.self_attn.out_proj", h)],
                bias=True,
                tp_split="row",
            ),
            _param(f"{p}.layer_norm2", (Param("weight", (h,)), Param("bias", (h,)))),
            _lin(
                f"{p}.mlp.fc1",
                TOWER_MLP,
                "ColumnParallelLinear",
                h,
                [(f"{p}.mlp.fc1", inter)],
                bias=True,
            ),
            _lin(
                f"{p}.mlp.fc2",
                TOWER_MLP,
                "RowParallelLinear",
                inter,
                [(f"{p}.mlp.fc2", h)],
                bias=True,
                tp_split="row",
            ),
        ]
    out.append(_param(f"{base}.post_layernorm", (Param("weight", (h,)), Param("bias", (h,)))))
    return out


def _gemma3_projector(prefix: str, vc: dict[str, Any], text_hidden: int) -> list[Module]:
    # vLLM 0.33 models/gemma3_mm.py Gemma3MultiModalProjector
    h = _int(vc, "hidden_size", default=1152)
    return [
        _param(
            f"{prefix}.mm_input_projection_weight",
            (Param("mm_input_projection_weight", (h, text_hidden)),),
        ),
        _param(f"{prefix}.mm_soft_emb_norm", (Param("weight", (h,)),)),
    ]


def _qwen_vl(prefix: str, vc: dict[str, Any], text_hidden: int, gated: bool) -> list[Module]:
    # vLLM 0.33 models/qwen2_5_vl.py Qwen2_5_VisionTransformer (gated MLP, RMSNorm) and
    # qwen2_vl.py Qwen2VisionTransformer (fc1/fc2, LayerNorm, embed_dim * mlp_ratio)
    h = _int(vc, "hidden_size", "embed_dim", default=1280)
    if not gated:
        h = _int(vc, "embed_dim", "hidden_size", default=1280)
    inter = _int(vc, "intermediate_size", default=h * _int(vc, "mlp_ratio", default=4))
    depth = _int(vc, "depth", "num_hidden_layers", default=32)
    patch, temporal = _int(vc, "patch_size", default=14), _int(vc, "temporal_patch_size", default=2)
    merge = _int(vc, "spatial_merge_size", default=2)
    out_h = _int(vc, "out_hidden_size", default=text_hidden) if gated else text_hidden
    out = [_param(f"{prefix}.patch_embed.proj", (Param("weight", (h, 3, temporal, patch, patch)),))]
    for j in range(depth):
        p = f"{prefix}.blocks.{j}"
        norm = (Param("weight", (h,)),) if gated else (Param("weight", (h,)), Param("bias", (h,)))
        out += [
            _param(f"{p}.norm1", norm),
            _lin(
                f"{p}.attn.qkv",
                TOWER_QKV,
                "QKVParallelLinear",
                h,
                [(f"{p}.attn.qkv", 3 * h)],
                bias=True,
                tp_split="qkv",
            ),
            _lin(
                f"{p}.attn.proj",
                TOWER_O,
                "RowParallelLinear",
                h,
                [(f"{p}.attn.proj", h)],
                bias=True,
                tp_split="row",
            ),
            _param(f"{p}.norm2", norm),
        ]
        if gated:
            out += [
                _lin(
                    f"{p}.mlp.gate_up_proj",
                    TOWER_MLP,
                    "MergedColumnParallelLinear",
                    h,
                    [(f"{p}.mlp.gate_proj", inter), (f"{p}.mlp.up_proj", inter)],
                    bias=True,
                ),
                _lin(
                    f"{p}.mlp.down_proj",
                    TOWER_MLP,
                    "RowParallelLinear",
                    inter,
                    [(f"{p}.mlp.down_proj", h)],
                    bias=True,
                    tp_split="row",
                ),
            ]
        else:
            out += [
                _lin(
                    f"{p}.mlp.fc1",
                    TOWER_MLP,
                    "ColumnParallelLinear",
                    h,
                    [(f"{p}.mlp.fc1", inter)],
                    bias=True,
                ),
                _lin(
                    f"{p}.mlp.fc2",
                    TOWER_MLP,
                    "RowParallelLinear",
                    inter,
                    [(f"{p}.mlp.fc2", h)],
                    bias=True,
                    tp_split="row",
                ),
            ]
    ctx = h * merge * merge
    ln = (Param("weight", (h,)),) if gated else (Param("weight", (h,)), Param("bias", (h,)))
    out += [
        _param(f"{prefix}.merger.ln_q", ln),
        _lin(
            f"{prefix}.merger.mlp.0",
            PROJECTOR,
            "ColumnParallelLinear",
            ctx,
            [(f"{prefix}.merger.mlp.0", ctx)],
            bias=True,
        ),
        _lin(
            f"{prefix}.merger.mlp.2",
            PROJECTOR,
            "RowParallelLinear",
            ctx,
            [(f"{prefix}.merger.mlp.2", out_h)],
            bias=True,
            tp_split="row",
        ),
    ]
    return out


TEMPLATES = {
    "siglip": _siglip,
    "gemma3_projector": _gemma3_projector,
    "qwen2_5_vl": lambda prefix, vc, th: _qwen_vl(prefix, vc, th, True),
    "qwen2_vl": lambda prefix, vc, th: _qwen_vl(prefix, vc, th, False),
}


def tower_modules(record: Record, cfg: ModelConfig, config: dict[str, Any]) -> list[Module]:
    """The modules of the record's towers (none for text-only records)."""
    out: list[Module] = []
    for tower in record.towers:
        vc = config.get(tower.get("config", "vision_config")) or {}
        build = TEMPLATES.get(tower["template"])
        if build is None or not isinstance(vc, dict):
            continue
        out += build(tower["prefix"], vc, cfg.hidden_size)
    return out


def is_tower(module: Module) -> bool:
    return module.kind.startswith("tower.")
