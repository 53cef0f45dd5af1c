"""Dense decoder models: Llama, Mistral, Qwen2, Qwen3."""

from __future__ import annotations

from servecheck.model.config import ModelConfig
from servecheck.model.inventory import (
    Inventory,
    Module,
    embedding,
    gated_mlp,
    gqa_attention,
    lm_head,
    norm,
)

# vLLM 0.33 models/llama.py LlamaForCausalLM.packed_modules_mapping (same for qwen2/qwen3);
# MoE models without a dense gate_up_proj (Mixtral, GPT-OSS) pack only qkv_proj
PACKED_QKV: dict[str, tuple[str, ...]] = {"qkv_proj": ("q_proj", "k_proj", "v_proj")}
PACKED_QKV_GATE_UP: dict[str, tuple[str, ...]] = {
    **PACKED_QKV,
    "gate_up_proj": ("gate_proj", "up_proj"),
}


def attention_biases(cfg: ModelConfig) -> tuple[bool, bool]:
    """(qkv bias, o_proj bias) as each model class builds them."""
    if cfg.model_type == "qwen2" or cfg.architecture == "Qwen2ForCausalLM":
        return True, False  # vLLM 0.33 models/qwen2.py Qwen2Attention: qkv bias=True, o bias=False
    if cfg.architecture in ("Qwen3ForCausalLM", "Qwen3MoeForCausalLM", "Glm4MoeForCausalLM"):
        # vLLM 0.33 models/qwen3.py and glm4_moe.py: qkv bias=attention_bias, o_proj bias=False
        return cfg.attention_bias, False
    if cfg.architecture == "MixtralForCausalLM":
        return False, False  # vLLM 0.33 models/mixtral.py MixtralAttention: no biases
    # vLLM 0.33 models/llama.py LlamaDecoderLayer: qkv_bias (if set) else attention_bias; o uses
    # attention_bias
    o_bias = bool(cfg.raw.get("attention_bias", False) or cfg.raw.get("bias", False))
    qkv = bool(cfg.raw["qkv_bias"]) if "qkv_bias" in cfg.raw else o_bias
    return qkv, o_bias


def decoder_attention(cfg: ModelConfig, i: int, prefix: str, mtp: bool = False) -> list[Module]:
    qkv_bias, o_bias = attention_biases(cfg)
    # vLLM 0.33 models/qwen3.py and qwen3_moe.py always build q_norm/k_norm; glm4_moe.py only
    # with use_qk_norm
    qk_norm = cfg.architecture in ("Qwen3ForCausalLM", "Qwen3MoeForCausalLM") or cfg.use_qk_norm
    return gqa_attention(
        f"{prefix}.self_attn",
        cfg.hidden_size,
        cfg.num_heads,
        cfg.num_kv_heads,
        cfg.head_dim,
        i,
        qkv_bias=qkv_bias,
        o_bias=o_bias,
        qk_norm=qk_norm,
        mtp=mtp,
    )


def attention_block(
    cfg: ModelConfig, i: int, attn: list[Module] | None = None, mtp: bool = False
) -> list[Module]:
    """A decoder layer's first half: input_layernorm, attention, post_attention_layernorm."""
    p = f"model.layers.{i}"
    attn = attn if attn is not None else decoder_attention(cfg, i, p, mtp=mtp)
    return [
        norm(f"{p}.input_layernorm", cfg.hidden_size, i, mtp),
        *attn,
        norm(f"{p}.post_attention_layernorm", cfg.hidden_size, i, mtp),
    ]


def top_level(cfg: ModelConfig, embed_quant: bool = True) -> tuple[list[Module], list[Module]]:
    """(modules before the layers, modules after): embeddings, final norm, lm_head.

    embed_quant: whether the model passes quant_config to VocabParallelEmbedding (vLLM 0.33:
    llama, qwen2/qwen3, qwen3_moe and deepseek_v2 do; glm4_moe and mixtral do not).
    """
    head = [embedding("model.embed_tokens", cfg.vocab_size, cfg.hidden_size, embed_quant)]
    tail = [norm("model.norm", cfg.hidden_size)]
    if not cfg.tie_word_embeddings:
        tail.append(lm_head(cfg.vocab_size, cfg.hidden_size))
    return head, tail


def build(cfg: ModelConfig) -> Inventory:
    head, tail = top_level(cfg)
    modules = list(head)
    for i in range(cfg.num_layers):
        modules += attention_block(cfg, i)
        modules += gated_mlp(
            f"model.layers.{i}.mlp", cfg.hidden_size, cfg.intermediate_size, i, bias=cfg.mlp_bias
        )
    modules += tail
    return Inventory(
        architecture=cfg.architecture,
        modules=tuple(modules),
        packed_modules_mapping=PACKED_QKV_GATE_UP,
    )
