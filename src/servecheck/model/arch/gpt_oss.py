"""gpt-oss (GptOssForCausalLM): attention with sinks and bias, fused MXFP4 experts.

vLLM 0.33 models/gpt_oss.py names modules differently from the checkpoint: its
hf_to_vllm_mapper turns `.self_attn.` into `.attn.` and `model.embed_tokens` into
`model.embedding`, and the experts are stored fused over all experts
(`mlp.experts.gate_up_proj_blocks`, `..._scales`, `..._bias`, `down_proj_*`).
"""

from __future__ import annotations

from servecheck.model.arch.dense import PACKED_QKV, top_level
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import (
    EMBEDDING,
    ROUTER,
    Experts,
    Inventory,
    Module,
    Param,
    gqa_attention,
    linear,
    norm,
    routed_experts,
)


def build(cfg: ModelConfig) -> Inventory:
    _, tail = top_level(cfg)
    modules: list[Module] = [
        # vLLM 0.33 gpt_oss.py GptOssModel: VocabParallelEmbedding built without quant_config
        Module(
            name="model.embedding",
            kind=EMBEDDING,
            layer_class="VocabParallelEmbedding",
            receives_quant_config=False,
            params=(Param("weight", (cfg.vocab_size, cfg.hidden_size)),),
            ckpt_name="model.embed_tokens",
            tp_split="vocab",
        )
    ]
    heads, kv, hd, hidden = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.hidden_size
    for i in range(cfg.num_layers):
        p, ck = f"model.layers.{i}", f"model.layers.{i}.self_attn"
        modules.append(norm(f"{p}.input_layernorm", hidden, i))
        # vLLM 0.33 gpt_oss.py OAIAttention: qkv and o with bias (named attn.*, stored as
        # self_attn.*), per-head sinks
        qkv, o, kv_cache = gqa_attention(
            f"{p}.attn", hidden, heads, kv, hd, i, qkv_bias=True, o_bias=True, ckpt_prefix=ck
        )
        modules += [qkv, o]
        modules.append(
            Module(
                name=f"{p}.attn.sinks",
                kind="attn.sinks",
                layer_class="Parameter",
                layer=i,
                receives_quant_config=False,
                params=(Param("sinks", (heads,)),),
                ckpt_name=ck,
                tp_split="column",
            )
        )
        modules.append(kv_cache)
        modules.append(norm(f"{p}.post_attention_layernorm", hidden, i))
        # vLLM 0.33 gpt_oss.py MLPBlock: GateLinear router with bias, no quant_config
        modules.append(
            linear(
                f"{p}.mlp.router",
                ROUTER,
                "GateLinear",
                hidden,
                [(f"{p}.mlp.router", cfg.num_experts)],
                layer=i,
                bias=True,
                receives_quant_config=False,
                tp_split="replicated",
            )
        )
        experts = Experts(cfg.num_experts, hidden, cfg.intermediate_size, fused_layout="gpt_oss")
        modules.append(routed_experts(f"{p}.mlp.experts", i, experts))
    modules += tail
    return Inventory(
        architecture=cfg.architecture,
        modules=tuple(modules),
        packed_modules_mapping=PACKED_QKV,
    )
