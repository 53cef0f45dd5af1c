"""Mixture-of-experts decoder models: Qwen3-MoE, Mixtral, GLM-4.5/4.6 (Glm4Moe)."""

from __future__ import annotations

from collections.abc import Callable

from servecheck.model.arch.dense import PACKED_QKV, PACKED_QKV_GATE_UP, attention_block, top_level
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import (
    MTP_PROJ,
    ROUTER,
    SHARED_DOWN,
    SHARED_GATE_UP,
    Experts,
    Inventory,
    LoaderRules,
    Module,
    Param,
    gated_mlp,
    linear,
    norm,
    routed_experts,
)


def router(
    prefix: str,
    cfg: ModelConfig,
    i: int,
    *,
    quantizable: bool,
    fp32: bool = False,
    correction_bias: bool = False,
    mtp: bool = False,
) -> Module:
    """The MoE router (vLLM GateLinear, replicated on every rank)."""
    params = (
        (Param("e_score_correction_bias", (cfg.num_experts,), "F32"),) if correction_bias else ()
    )
    return linear(
        f"{prefix}.gate",
        ROUTER,
        "GateLinear",
        cfg.hidden_size,
        [(f"{prefix}.gate", cfg.num_experts)],
        layer=i,
        receives_quant_config=quantizable,
        tp_split="replicated",
        params=params,
        mtp=mtp,
        weight_dtype="F32" if fp32 else None,
    )


# ---------------------------------------------------------------------------------------------
# Qwen3-MoE


def qwen3_moe_is_sparse(cfg: ModelConfig, i: int) -> bool:
    # vLLM 0.33 models/qwen3_moe.py Qwen3MoeDecoderLayer: not in mlp_only_layers and
    # (i + 1) % decoder_sparse_step == 0
    return (
        i not in cfg.mlp_only_layers
        and cfg.num_experts > 0
        and (i + 1) % cfg.decoder_sparse_step == 0
    )


def build_qwen3_moe(cfg: ModelConfig) -> Inventory:
    head, tail = top_level(cfg)
    modules = list(head)
    for i in range(cfg.num_layers):
        p = f"model.layers.{i}"
        modules += attention_block(cfg, i)
        if qwen3_moe_is_sparse(cfg, i):
            # vLLM 0.33 models/qwen3_moe.py Qwen3MoeSparseMoeBlock: GateLinear gets quant_config
            modules.append(router(f"{p}.mlp", cfg, i, quantizable=True))
            experts = Experts(cfg.num_experts, cfg.hidden_size, cfg.moe_intermediate_size)
            modules.append(routed_experts(f"{p}.mlp.experts", i, experts))
        else:
            modules += gated_mlp(f"{p}.mlp", cfg.hidden_size, cfg.intermediate_size, i)
    modules += tail
    # vLLM 0.33 Qwen3MoeForCausalLM: gate_up_proj is packed only when mlp_only_layers is set
    packed = PACKED_QKV_GATE_UP if cfg.mlp_only_layers else PACKED_QKV
    return Inventory(
        architecture=cfg.architecture,
        modules=tuple(modules),
        packed_modules_mapping=packed,
        # vLLM 0.33 models/qwen3_moe.py Qwen3MoeModel.load_weights ignore_unexpected_suffixes
        loader=LoaderRules(
            style="auto",
            ignored_suffixes=(
                ".bias",
                "_bias",
                ".weight_scale",
                "_weight_scale",
                ".input_scale",
                "_input_scale",
            ),
        ),
    )


# ---------------------------------------------------------------------------------------------
# Mixtral


def build_mixtral(cfg: ModelConfig) -> Inventory:
    head, tail = top_level(cfg, embed_quant=False)
    modules = list(head)
    intermediate = cfg.intermediate_size
    for i in range(cfg.num_layers):
        p = f"model.layers.{i}"
        modules += attention_block(cfg, i)
        # vLLM 0.33 models/mixtral.py MixtralMoE: GateLinear without quant_config, experts w1/w2/w3
        modules.append(router(f"{p}.block_sparse_moe", cfg, i, quantizable=False))
        experts = Experts(
            cfg.num_experts,
            cfg.hidden_size,
            intermediate,
            gate_name="w1",
            up_name="w3",
            down_name="w2",
        )
        modules.append(routed_experts(f"{p}.block_sparse_moe.experts", i, experts))
    modules += tail
    return Inventory(
        architecture=cfg.architecture,
        modules=tuple(modules),
        packed_modules_mapping=PACKED_QKV,
    )


# ---------------------------------------------------------------------------------------------
# GLM-4.5 / 4.6 / 4.7 (Glm4MoeForCausalLM)


def glm4_moe_is_sparse(cfg: ModelConfig, i: int) -> bool:
    # vLLM 0.33 models/glm4_moe.py Glm4MoeDecoderLayer: MoE when n_routed_experts and
    # i >= first_k_dense_replace
    return cfg.num_experts > 0 and i >= cfg.first_k_dense_replace


def glm4_moe_layer(cfg: ModelConfig, i: int, mtp: bool = False) -> list[Module]:
    p = f"model.layers.{i}"
    modules = attention_block(cfg, i, mtp=mtp)
    if not glm4_moe_is_sparse(cfg, i):
        return modules + gated_mlp(f"{p}.mlp", cfg.hidden_size, cfg.intermediate_size, i, mtp=mtp)
    # vLLM 0.33 models/glm4_moe.py Glm4MoE: GateLinear(params_dtype=float32) without quant_config,
    # plus an fp32 e_score_correction_bias
    modules.append(
        router(f"{p}.mlp", cfg, i, quantizable=False, fp32=True, correction_bias=True, mtp=mtp)
    )
    return modules + shared_and_routed_experts(cfg, i, mtp)


def shared_and_routed_experts(cfg: ModelConfig, i: int, mtp: bool = False) -> list[Module]:
    """GLM-4.5 / DeepSeek-V3 MoE block after the router: shared experts (one MLP of
    moe_intermediate_size x n_shared_experts) and the routed experts."""
    p = f"model.layers.{i}.mlp"
    modules: list[Module] = []
    if cfg.num_shared_experts:
        modules += gated_mlp(
            f"{p}.shared_experts",
            cfg.hidden_size,
            cfg.moe_intermediate_size * cfg.num_shared_experts,
            i,
            kind_gate_up=SHARED_GATE_UP,
            kind_down=SHARED_DOWN,
            mtp=mtp,
        )
    experts = Experts(cfg.num_experts, cfg.hidden_size, cfg.moe_intermediate_size)
    modules.append(routed_experts(f"{p}.experts", i, experts, mtp=mtp))
    return modules


def layers_with_mtp(cfg: ModelConfig, layer: Callable[..., list[Module]]) -> list[Module]:
    """The decoder layers `layer(cfg, i)`, then the MTP layers after them, each built as
    `layer(cfg, i, mtp=True)` with its extras."""
    modules: list[Module] = []
    for i in range(cfg.num_layers):
        modules += layer(cfg, i)
    for i in range(cfg.num_layers, cfg.num_layers + cfg.num_nextn_predict_layers):
        modules += layer(cfg, i, mtp=True) + mtp_extras(cfg, i)
    return modules


def mtp_extras(cfg: ModelConfig, i: int) -> list[Module]:
    """MTP layer parts beside its decoder block (vLLM 0.33 models/glm4_moe_mtp.py and
    deepseek_mtp.py): enorm, hnorm, eh_proj (a plain torch Linear, never quantized),
    shared_head.norm."""
    p = f"model.layers.{i}"
    return [
        norm(f"{p}.enorm", cfg.hidden_size, i, mtp=True),
        norm(f"{p}.hnorm", cfg.hidden_size, i, mtp=True),
        linear(
            f"{p}.eh_proj",
            MTP_PROJ,
            "Linear",
            2 * cfg.hidden_size,
            [(f"{p}.eh_proj", cfg.hidden_size)],
            layer=i,
            receives_quant_config=False,
            tp_split="replicated",
            mtp=True,
        ),
        norm(f"{p}.shared_head.norm", cfg.hidden_size, i, mtp=True),
    ]


def build_glm4_moe(cfg: ModelConfig) -> Inventory:
    head, tail = top_level(cfg, embed_quant=False)
    modules = [*head, *layers_with_mtp(cfg, glm4_moe_layer), *tail]
    return Inventory(
        architecture=cfg.architecture,
        modules=tuple(modules),
        packed_modules_mapping=PACKED_QKV_GATE_UP,
        # vLLM 0.33 models/glm4_moe.py Glm4MoeModel.load_weights: skip_spec_layers drops MTP layers
        loader=LoaderRules(style="auto", skip_layers_from=cfg.num_layers),
    )
