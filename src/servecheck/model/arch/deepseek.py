"""DeepSeek-V2/V3 (and Kimi-K2, which reuses DeepseekV3ForCausalLM): MLA attention + MoE;
DeepSeek-V3.2 and GLM-5 (configs with `index_topk`) add the sparse-attention indexer."""

from __future__ import annotations

import dataclasses

from servecheck.model.arch.dense import attention_block, top_level
from servecheck.model.arch.moe import layers_with_mtp, router, shared_and_routed_experts
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import (
    ATTN_MLA_A,
    ATTN_MLA_KV_B,
    ATTN_MLA_Q,
    ATTN_O,
    OTHER,
    CacheLayer,
    Inventory,
    LoaderRules,
    Module,
    Param,
    attention,
    gated_mlp,
    linear,
    norm,
    row_linear,
)


def mla_attention(cfg: ModelConfig, i: int, mtp: bool = False) -> list[Module]:
    """vLLM 0.33 models/deepseek_v2.py DeepseekV2MLAAttention."""
    p = f"model.layers.{i}.self_attn"
    qk_head = cfg.qk_nope_head_dim + cfg.qk_rope_head_dim
    kv_lora = cfg.kv_lora_rank or 0
    modules: list[Module] = []
    if cfg.q_lora_rank is not None:
        # q_a_proj and kv_a_proj_with_mqa are fused into one replicated merged linear.
        modules.append(
            linear(
                f"{p}.fused_qkv_a_proj",
                ATTN_MLA_A,
                "DeepSeekV2FusedQkvAProjLinear",
                cfg.hidden_size,
                [
                    (f"{p}.q_a_proj", cfg.q_lora_rank),
                    (f"{p}.kv_a_proj_with_mqa", kv_lora + cfg.qk_rope_head_dim),
                ],
                layer=i,
                tp_split="replicated",
                mtp=mtp,
            )
        )
        modules.append(norm(f"{p}.q_a_layernorm", cfg.q_lora_rank, i, mtp))
        q_in, q_name = cfg.q_lora_rank, "q_b_proj"
    else:
        modules.append(
            linear(
                f"{p}.kv_a_proj_with_mqa",
                ATTN_MLA_A,
                "ReplicatedLinear",
                cfg.hidden_size,
                [(f"{p}.kv_a_proj_with_mqa", kv_lora + cfg.qk_rope_head_dim)],
                layer=i,
                tp_split="replicated",
                mtp=mtp,
            )
        )
        q_in, q_name = cfg.hidden_size, "q_proj"
    modules.append(
        linear(
            f"{p}.{q_name}",
            ATTN_MLA_Q,
            "ColumnParallelLinear",
            q_in,
            [(f"{p}.{q_name}", cfg.num_heads * qk_head)],
            layer=i,
            mtp=mtp,
        )
    )
    modules.append(norm(f"{p}.kv_a_layernorm", kv_lora, i, mtp))
    modules.append(
        linear(
            f"{p}.kv_b_proj",
            ATTN_MLA_KV_B,
            "ColumnParallelLinear",
            kv_lora,
            [(f"{p}.kv_b_proj", cfg.num_heads * (cfg.qk_nope_head_dim + cfg.v_head_dim))],
            layer=i,
            mtp=mtp,
        )
    )
    modules.append(
        row_linear(
            f"{p}.o_proj", ATTN_O, cfg.num_heads * cfg.v_head_dim, cfg.hidden_size, layer=i, mtp=mtp
        )
    )
    modules.append(attention(p, i, mtp))
    if has_indexer(cfg, i):
        modules += indexer_modules(cfg, i, mtp)
    return modules


# Indexer keys are FP8 in blocks of 128 values, each block with one fp32 scale (vLLM 0.33
# deepseek_v2.py Indexer quant_block_size)
INDEXER_QUANT_BLOCK = 128


def is_sparse(cfg: ModelConfig) -> bool:
    # vLLM 0.33 deepseek_v2.py DeepseekV2MLAAttention: is_v32 = hasattr(config, "index_topk")
    return "index_topk" in cfg.raw


def has_indexer(cfg: ModelConfig, i: int) -> bool:
    """Whether layer i builds an indexer (vLLM 0.24+ deepseek_v2.py / 0.33 models/deepseek_v32
    attention.py: index_topk_freq / index_topk_pattern skip some backbone layers; MTP layers
    always have one)."""
    if not is_sparse(cfg):
        return False
    if i >= cfg.num_layers:
        return True
    pattern = cfg.raw.get("index_topk_pattern")
    if isinstance(pattern, str | list) and pattern:
        return not (i < len(pattern) and pattern[i] == "S")
    freq = int(cfg.raw.get("index_topk_freq", 1) or 1)
    offset = int(cfg.raw.get("index_skip_topk_offset", 2) or 0)
    return max(i - offset + 1, 0) % freq == 0


def indexer_modules(cfg: ModelConfig, i: int, mtp: bool = False) -> list[Module]:
    """vLLM 0.33 deepseek_v2.py Indexer: wq_b (replicated, quantized like the model), wk and
    weights_proj fused into one unquantized replicated linear (an FP8 wk is dequantized at
    load), an fp32 LayerNorm on the keys. The key cache is a CacheLayer of kind "indexer"."""
    p = f"model.layers.{i}.self_attn.indexer"
    heads = int(cfg.raw.get("index_n_heads", 64))
    head_dim = int(cfg.raw.get("index_head_dim", 128))
    wk = linear(
        f"{p}.wk_weights_proj",
        OTHER,
        "MergedColumnParallelLinear",
        cfg.hidden_size,
        [(f"{p}.wk", head_dim), (f"{p}.weights_proj", heads)],
        layer=i,
        receives_quant_config=False,
        tp_split="replicated",
        mtp=mtp,
    )
    return [
        linear(
            f"{p}.wq_b",
            OTHER,
            "ReplicatedLinear",
            cfg.q_lora_rank or cfg.hidden_size,
            [(f"{p}.wq_b", heads * head_dim)],
            layer=i,
            tp_split="replicated",
            mtp=mtp,
        ),
        dataclasses.replace(wk, upcast_fp8=True),
        Module(
            name=f"{p}.k_norm",
            kind="norm",
            layer_class="LayerNorm",
            layer=i,
            receives_quant_config=False,
            params=(Param("weight", (head_dim,), "F32"), Param("bias", (head_dim,), "F32")),
            mtp=mtp,
            tp_split="replicated",
        ),
    ]


def cache_layers(cfg: ModelConfig) -> tuple[CacheLayer, ...]:
    """DeepSeek-V3.2's caches per layer: the MLA latent (kv_lora_rank + rope dims) and the
    indexer's FP8 keys with their scales, head_dim + head_dim / 128 x 4 bytes per token
    (vLLM 0.33 deepseek_v2.py DeepseekV32IndexerCache, an MLAAttentionSpec of uint8)."""
    latent = (cfg.kv_lora_rank or 0) + cfg.qk_rope_head_dim
    head_dim = int(cfg.raw.get("index_head_dim", 128))
    index_bytes = head_dim + head_dim // INDEXER_QUANT_BLOCK * 4
    out: list[CacheLayer] = []
    for i in range(cfg.num_layers + cfg.num_nextn_predict_layers):
        mtp = i >= cfg.num_layers
        out.append(CacheLayer(i, "mla", kv_heads=1, head_size=latent, mtp=mtp, sparse=True))
        if has_indexer(cfg, i):
            out.append(
                CacheLayer(
                    i, "indexer", kv_heads=1, head_size=head_dim, fixed_bytes=index_bytes, mtp=mtp
                )
            )
    return tuple(out)


def is_moe_layer(cfg: ModelConfig, i: int) -> bool:
    # vLLM 0.33 models/deepseek_v2.py DeepseekV2DecoderLayer.is_moe_layer
    return cfg.num_experts > 0 and i >= cfg.first_k_dense_replace and i % cfg.moe_layer_freq == 0


def deepseek_layer(cfg: ModelConfig, i: int, mtp: bool = False) -> list[Module]:
    p = f"model.layers.{i}"
    modules = attention_block(cfg, i, mla_attention(cfg, i, mtp), mtp)
    if not is_moe_layer(cfg, i):
        return modules + gated_mlp(f"{p}.mlp", cfg.hidden_size, cfg.intermediate_size, i, mtp=mtp)
    # vLLM 0.33 deepseek_v2.py DeepseekV2MoE: GateLinear without quant_config; an fp32
    # e_score_correction_bias only with topk_method == "noaux_tc"
    modules.append(
        router(
            f"{p}.mlp",
            cfg,
            i,
            quantizable=False,
            correction_bias=cfg.topk_method == "noaux_tc",
            mtp=mtp,
        )
    )
    return modules + shared_and_routed_experts(cfg, i, mtp)


def build(cfg: ModelConfig) -> Inventory:
    head, tail = top_level(cfg)
    modules = [*head, *layers_with_mtp(cfg, deepseek_layer), *tail]
    packed: dict[str, tuple[str, ...]] = {"gate_up_proj": ("gate_proj", "up_proj")}
    if cfg.q_lora_rank is not None:
        # vLLM 0.33 DeepseekV2ForCausalLM.__init__ adds fused_qkv_a_proj when q_lora_rank is set
        packed["fused_qkv_a_proj"] = ("q_a_proj", "kv_a_proj_with_mqa")
    return Inventory(
        architecture=cfg.architecture,
        modules=tuple(modules),
        packed_modules_mapping=packed,
        # vLLM 0.33 deepseek_v2.py DeepseekV2ForCausalLM.load_weights: a hand-written loop over
        # params_dict (KeyError on unknown names) that skips spec-decode (MTP) layers
        loader=LoaderRules(style="manual", skip_layers_from=cfg.num_layers),
        cache_layers=cache_layers(cfg) if is_sparse(cfg) else (),
    )
