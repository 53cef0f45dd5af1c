"""Vision towers and their projectors, as vLLM builds them beside the language model.

A record's `towers` list holds one table per tower: its vLLM `prefix`, its `template` (the
vLLM encoder it mirrors, below), the key of its config (`config`, default "vision_config"; ""
= the top-level config) and `quant = false` where vLLM builds it without the quantization
config. Sizes come from that config. Tower modules have kind "tower.*", so the planner can
leave them out when every modality is limited to 0 (vLLM then builds the language model only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from servecheck.model.arch.vit import (
    PROJECTOR,
    TOWER_PARAM,
    attention,
    conv,
    gated_mlp,
    lin,
    mlp,
    norm,
    num,
    param,
    without_quant,
)
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import Module, Param
from servecheck.model.records import Record

# (prefix, vision config, whole config, text hidden size) -> modules
Template = Callable[[str, dict[str, Any], dict[str, Any], int], list[Module]]


def _siglip(prefix: str, vc: dict[str, Any], top: dict[str, Any], text_h: int) -> list[Module]:
    # vLLM 0.33 models/siglip.py SiglipVisionModel
    h, inter = num(vc, "hidden_size", default=1152), num(vc, "intermediate_size", default=4304)
    patch, image = num(vc, "patch_size", default=14), num(vc, "image_size", default=896)
    base = f"{prefix}.vision_model"
    out = [
        conv(f"{base}.embeddings.patch_embedding", h, 3, (patch, patch), True),
        param(
            f"{base}.embeddings.position_embedding",
            Param("weight", ((image // patch) ** 2, h)),
        ),
    ]
    for j in range(num(vc, "num_hidden_layers", default=27)):
        p = f"{base}.encoder.layers.{j}"
        out += [norm(f"{p}.layer_norm1", h)]
        out += attention(f"{p}.self_attn", h, o_name="out_proj")
        out += [norm(f"{p}.layer_norm2", h)]
        out += mlp(f"{p}.mlp", h, inter)
    return [*out, norm(f"{base}.post_layernorm", h)]


def _gemma3_projector(
    prefix: str, vc: dict[str, Any], top: dict[str, Any], text_h: int
) -> list[Module]:
    # vLLM 0.33 models/gemma3_mm.py Gemma3MultiModalProjector: a bare weight and a norm
    h = num(vc, "hidden_size", default=1152)
    return [
        param(
            f"{prefix}.mm_input_projection_weight",
            Param("mm_input_projection_weight", (h, text_h)),
            ckpt=prefix,
        ),
        norm(f"{prefix}.mm_soft_emb_norm", h, bias=False),
    ]


def _qwen_vl(prefix: str, vc: dict[str, Any], text_h: int, version: int) -> list[Module]:
    # vLLM 0.33 models/qwen2_vl.py Qwen2VisionTransformer (fc1/fc2, LayerNorm, embed_dim x
    # mlp_ratio), qwen2_5_vl.py Qwen2_5_VisionTransformer (gated MLP, RMSNorm) and
    # qwen3_vl.py Qwen3_VisionTransformer (linear_fc1/fc2, LayerNorm, learned positions,
    # deepstack mergers)
    keys = ("embed_dim", "hidden_size") if version == 2 else ("hidden_size", "embed_dim")
    h = num(vc, *keys, default=1280)
    inter = num(vc, "intermediate_size", default=h * num(vc, "mlp_ratio", default=4))
    if version == 2:
        inter = h * num(vc, "mlp_ratio", default=4)
    patch, temporal = num(vc, "patch_size", default=14), num(vc, "temporal_patch_size", default=2)
    merge = num(vc, "spatial_merge_size", default=2)
    out_h = num(vc, "out_hidden_size", default=text_h) if version > 2 else text_h
    ln = version != 25  # LayerNorm (with bias) in Qwen2-VL and Qwen3-VL, RMSNorm in 2.5
    out = [conv(f"{prefix}.patch_embed.proj", h, 3, (temporal, patch, patch), version == 3)]
    if version == 3:
        positions = num(vc, "num_position_embeddings", default=2304)
        out.append(param(f"{prefix}.pos_embed", Param("weight", (positions, h))))
    for j in range(num(vc, "depth", "num_hidden_layers", default=32)):
        p = f"{prefix}.blocks.{j}"
        out += [norm(f"{p}.norm1", h, ln)]
        out += attention(f"{p}.attn", h, qkv=("qkv",), qkv_name="qkv", o_name="proj")
        out += [norm(f"{p}.norm2", h, ln)]
        if version == 25:
            out += gated_mlp(f"{p}.mlp", h, inter)
        elif version == 3:
            out += mlp(f"{p}.mlp", h, inter, names=("linear_fc1", "linear_fc2"))
        else:
            out += mlp(f"{p}.mlp", h, inter)
    ctx = h * merge * merge
    if version != 3:
        out += [norm(f"{prefix}.merger.ln_q", h, ln)]
        return out + mlp(
            f"{prefix}.merger.mlp", ctx, ctx, names=("0", "2"), kind=PROJECTOR, out=out_h
        )
    deepstack = vc.get("deepstack_visual_indexes") or []
    mergers = [(f"{prefix}.merger", h)] + [
        (f"{prefix}.deepstack_merger_list.{k}", ctx) for k in range(len(deepstack))
    ]
    for name, norm_size in mergers:
        out += [norm(f"{name}.norm", norm_size)]
        out += mlp(name, ctx, ctx, names=("linear_fc1", "linear_fc2"), kind=PROJECTOR, out=out_h)
    return out


def _llama4(prefix: str, vc: dict[str, Any], top: dict[str, Any], text_h: int) -> list[Module]:
    # vLLM 0.33 models/mllama4.py Llama4VisionModel (unfold patch embedding as a linear, class
    # token, learned positions, pre/post LayerNorm, pixel-shuffle adapter MLP)
    h, inter = num(vc, "hidden_size", default=1408), num(vc, "intermediate_size", default=5632)
    patch, image = num(vc, "patch_size", default=14), num(vc, "image_size", default=336)
    channels = num(vc, "num_channels", default=3)
    out = [
        lin(f"{prefix}.patch_embedding.linear", channels * patch * patch, h, bias=False),
        param(f"{prefix}.class_embedding", Param("class_embedding", (h,)), ckpt=prefix),
        param(
            f"{prefix}.positional_embedding_vlm",
            Param("positional_embedding_vlm", ((image // patch) ** 2 + 1, h)),
            ckpt=prefix,
        ),
        norm(f"{prefix}.layernorm_pre", h),
        norm(f"{prefix}.layernorm_post", h),
    ]
    for j in range(num(vc, "num_hidden_layers", default=34)):
        p = f"{prefix}.model.layers.{j}"
        out += [norm(f"{p}.input_layernorm", h)]
        out += attention(f"{p}.self_attn", h)
        out += [norm(f"{p}.post_attention_layernorm", h)]
        out += mlp(f"{p}.mlp", h, inter)
    adapter_in = num(vc, "projector_input_dim", default=4096)
    adapter_out = num(vc, "projector_output_dim", default=4096)
    bias = bool(vc.get("multi_modal_projector_bias", False))
    out += mlp(
        f"{prefix}.vision_adapter.mlp",
        inter,
        adapter_in,
        bias=bias,
        kind=PROJECTOR,
        out=adapter_out,
    )
    return out


def _llama4_projector(
    prefix: str, vc: dict[str, Any], top: dict[str, Any], text_h: int
) -> list[Module]:
    # vLLM 0.33 models/mllama4.py Llama4MultiModalProjector
    n_in = num(vc, "vision_output_dim", default=4096)
    return [lin(f"{prefix}.linear_1", n_in, text_h, kind=PROJECTOR, bias=False)]


def _pixtral(prefix: str, vc: dict[str, Any], top: dict[str, Any], text_h: int) -> list[Module]:
    # vLLM 0.33 models/pixtral.py PixtralHFVisionModel (built up to the deepest feature layer,
    # mistral3.py _get_num_hidden_layers / llava.py)
    h, inter = num(vc, "hidden_size", default=1024), num(vc, "intermediate_size", default=4096)
    patch = num(vc, "patch_size", default=16)
    layers = num(vc, "num_hidden_layers", default=24)
    feature = top.get("vision_feature_layer", -1)
    feature = max(feature) if isinstance(feature, list) and feature else feature
    if isinstance(feature, int) and not isinstance(feature, bool):
        # vLLM 0.33 models/vision.py get_layer_index: negative counts from the end
        layers = feature + layers + 1 if feature < 0 else feature
    out = [
        conv(f"{prefix}.patch_conv", h, num(vc, "num_channels", default=3), (patch, patch), False),
        norm(f"{prefix}.ln_pre", h, bias=False),
    ]
    for j in range(layers):
        p = f"{prefix}.transformer.layers.{j}"
        out += [norm(f"{p}.attention_norm", h, bias=False)]
        out += attention(f"{p}.attention", h, bias=False)
        out += [norm(f"{p}.ffn_norm", h, bias=False)]
        out += gated_mlp(f"{p}.feed_forward", h, inter, bias=False)
    return out


def _mistral3_projector(
    prefix: str, vc: dict[str, Any], top: dict[str, Any], text_h: int
) -> list[Module]:
    # vLLM 0.33 models/mistral3.py Mistral3MultiModalProjector (RMSNorm, a plain torch Linear
    # merging spatial_merge_size^2 patches, two linears)
    h = num(vc, "hidden_size", default=1024)
    merge = num(top, "spatial_merge_size", default=2)
    bias = bool(top.get("multimodal_projector_bias", False))
    return [
        norm(f"{prefix}.norm", h, bias=False),
        lin(f"{prefix}.patch_merger.merging_layer", h * merge * merge, h, cls="Linear", bias=False),
        *mlp(
            prefix, h, text_h, names=("linear_1", "linear_2"), bias=bias, kind=PROJECTOR, out=text_h
        ),
    ]


def _glm4v(prefix: str, vc: dict[str, Any], top: dict[str, Any], text_h: int) -> list[Module]:
    # vLLM 0.33 models/glm4_1v.py Glm4vVisionTransformer (RMSNorm blocks with a gated MLP of
    # out_hidden_size, a strided convolution down to out_hidden_size, Glm4vPatchMerger)
    h, out_h = num(vc, "hidden_size", default=1536), num(vc, "out_hidden_size", default=4096)
    inter = num(vc, "intermediate_size", default=13696)
    patch, temporal = num(vc, "patch_size", default=14), num(vc, "temporal_patch_size", default=2)
    image, merge = num(vc, "image_size", default=336), num(vc, "spatial_merge_size", default=2)
    channels = num(vc, "in_channels", "num_channels", default=3)
    bias = bool(vc.get("attention_bias", False))
    out = [
        conv(f"{prefix}.patch_embed.proj", h, channels, (temporal, patch, patch), True),
        norm(f"{prefix}.post_conv_layernorm", h, bias=False),
        param(
            f"{prefix}.embeddings.position_embedding", Param("weight", ((image // patch) ** 2, h))
        ),
    ]
    for j in range(num(vc, "depth", "num_hidden_layers", default=24)):
        p = f"{prefix}.blocks.{j}"
        out += [norm(f"{p}.norm1", h, bias=False)]
        out += attention(f"{p}.attn", h, qkv=("qkv",), qkv_name="qkv", o_name="proj", bias=bias)
        out += [norm(f"{p}.norm2", h, bias=False)]
        out += gated_mlp(f"{p}.mlp", h, out_h, bias=False)
    out += [
        norm(f"{prefix}.post_layernorm", h, bias=False),
        conv(f"{prefix}.downsample", out_h, h, (merge, merge), True),
        lin(f"{prefix}.merger.proj", out_h, out_h, kind=PROJECTOR, bias=False),
        norm(f"{prefix}.merger.post_projection_norm", out_h),
        *gated_mlp(f"{prefix}.merger", out_h, inter, bias=False, kind=PROJECTOR),
    ]
    return out


TEMPLATES: dict[str, Template] = {
    "siglip": _siglip,
    "gemma3_projector": _gemma3_projector,
    "qwen2_vl": lambda prefix, vc, top, th: _qwen_vl(prefix, vc, th, 2),
    "qwen2_5_vl": lambda prefix, vc, top, th: _qwen_vl(prefix, vc, th, 25),
    "qwen3_vl": lambda prefix, vc, top, th: _qwen_vl(prefix, vc, th, 3),
    "llama4_vision": _llama4,
    "llama4_projector": _llama4_projector,
    "pixtral": _pixtral,
    "mistral3_projector": _mistral3_projector,
    "glm4v": _glm4v,
}


def tower_modules(record: Record, cfg: ModelConfig, config: dict[str, Any]) -> list[Module]:
    """The modules of the record's towers (none for text-only records). `config` is the
    whole config.json (towers read their own nested config from it)."""
    out: list[Module] = []
    for tower in record.towers:
        key = tower.get("config", "vision_config")
        vc = config.get(key) if key else config
        build = TEMPLATES.get(tower["template"])
        if build is None or not isinstance(vc, dict):
            continue
        modules = build(tower["prefix"], vc, config, cfg.hidden_size)
        out += modules if tower.get("quant", True) else without_quant(modules)
    return out


def is_tower(module: Module) -> bool:
    return module.kind.startswith("tower.")


__all__ = ["TEMPLATES", "TOWER_PARAM", "is_tower", "tower_modules"]
