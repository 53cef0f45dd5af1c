"""Build an inventory from an architecture record: embeddings, decoder layers (attention of
each kind, Mamba / linear-attention mixers, dense MLP or MoE), final norm, LM head, towers.

The record (knowledge/architectures.toml) holds the names and choices; model/layers.py says
what each layer is; model/arch/mixers.py builds the recurrent mixers and towers.py the
vision/audio towers. With the `[generic]` record this is the config-only derivation used for
architectures without a record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any

from servecheck.model.arch.mixers import dim, mixer_modules
from servecheck.model.arch.towers import tower_modules
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import (
    ATTN_O,
    ATTN_QKV,
    MLP_DOWN,
    MLP_GATE_UP,
    OTHER,
    ROUTER,
    SHARED_DOWN,
    SHARED_GATE,
    SHARED_GATE_UP,
    CacheLayer,
    Experts,
    Inventory,
    LoaderRules,
    Module,
    Param,
    attention,
    embedding,
    linear,
    lm_head,
    routed_experts,
    row_linear,
)
from servecheck.model.layers import LayerKind, plan_layers
from servecheck.model.records import MoeRecord, Record
from servecheck.versions import Release


def _norm(name: str, size: int, layer: int | None, record: Record) -> Module:
    params = (Param("weight", (size,)),)
    if record.norm_bias:
        params += (Param("bias", (size,)),)
    return Module(
        name=name,
        kind="norm",
        layer_class=record.norm_class,
        layer=layer,
        receives_quant_config=False,
        params=params,
        tp_split="replicated",
    )


def _attention(record: Record, cfg: ModelConfig, i: int, p: str) -> list[Module]:
    raw = cfg.raw
    prefix = f"{p}.{record.attn}" if record.attn else p
    # where the checkpoint keeps the projections when vLLM hangs them elsewhere (Jamba)
    ck = f"{p}.{record.attn_ckpt}" if record.attn_ckpt else prefix
    heads, kv, hd = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    q_out = heads * hd * (2 if record.flag(record.q_gate, raw) else 1)
    sizes = (q_out, kv * hd, kv * hd)
    if len(record.qkv_ckpt) == 1:
        shards = [(f"{ck}.{record.qkv_ckpt[0]}", sum(sizes))]
    else:
        shards = [(f"{ck}.{n}", size) for n, size in zip(record.qkv_ckpt, sizes, strict=True)]
    modules = [
        linear(
            f"{prefix}.{record.qkv_name}",
            ATTN_QKV,
            "QKVParallelLinear",
            cfg.hidden_size,
            shards,
            layer=i,
            bias=record.flag(record.qkv_bias, raw),
            tp_split="qkv",
        ),
        row_linear(
            f"{prefix}.{record.o_name}",
            ATTN_O,
            heads * hd,
            cfg.hidden_size,
            layer=i,
            bias=record.flag(record.o_bias, raw),
            ckpt=f"{ck}.{record.o_name}",
        ),
        attention(prefix, i),
    ]
    if record.flag(record.qk_norm, raw):
        q_size, k_size = hd, hd
        if record.qk_norm_shape == "heads":
            # q_norm / k_norm over all heads (vLLM 0.24 models/olmo2.py, minimax_m2.py)
            q_size, k_size = heads * hd, kv * hd
        q_name, k_name = record.qk_norm_names
        modules += [
            _norm(f"{prefix}.{q_name}", q_size, i, record),
            _norm(f"{prefix}.{k_name}", k_size, i, record),
        ]
    return modules


def _mlp(
    record: Record,
    prefix: str,
    hidden: int,
    inter: int,
    i: int,
    bias: bool,
    kinds: tuple[str, str] = (MLP_GATE_UP, MLP_DOWN),
) -> list[Module]:
    if record.mlp_kind == "plain":
        up, down = record.mlp_names
        return [
            linear(
                f"{prefix}.{up}",
                kinds[0],
                "ColumnParallelLinear",
                hidden,
                [(f"{prefix}.{up}", inter)],
                layer=i,
                bias=bias,
            ),
            row_linear(f"{prefix}.{down}", kinds[1], inter, hidden, layer=i, bias=bias),
        ]
    names = record.gate_up_ckpt
    gate_up = (
        [(f"{prefix}.{names[0]}", 2 * inter)]
        if len(names) == 1
        else [(f"{prefix}.{n}", inter) for n in names]
    )
    return [
        linear(
            f"{prefix}.{record.gate_up_name}",
            kinds[0],
            "MergedColumnParallelLinear",
            hidden,
            gate_up,
            layer=i,
            bias=bias,
        ),
        row_linear(f"{prefix}.{record.down_name}", kinds[1], inter, hidden, layer=i, bias=bias),
    ]


def _shared_size(moe: MoeRecord, cfg: ModelConfig) -> int:
    raw = cfg.raw
    if moe.shared_size == "n_shared_experts":
        n = (
            raw.get("n_shared_experts")
            or raw.get("num_shared_experts")
            or raw.get("moe_num_shared_experts")
            or 0
        )
        return int(n) * cfg.moe_intermediate_size
    # a config key, or a product of keys ("moe_shared_expert_intermediate_size*n_shared_experts")
    return dim(moe.shared_size, cfg)


def _experts_layout(moe: MoeRecord, cfg: ModelConfig, names: Collection[str] | None) -> str | None:
    """How the checkpoint stores the experts: fused 3-D tensors, or one set per expert. vLLM's
    loaders take either (vLLM 0.33 models/llama4.py load_weights switches on
    "experts.gate_up_proj" in the name). Without tensors: the original release's fused
    layout, or one set per expert for quantized checkpoints (quantization tools write
    per-expert linears)."""
    if not moe.fused:
        return None
    if names is None:
        return None if cfg.raw.get("quantization_config") else moe.fused
    marker = f".{moe.experts}.0."
    return None if any(marker in n for n in names) else moe.fused


def _latent(moe: MoeRecord, cfg: ModelConfig, i: int, prefix: str) -> tuple[int, list[Module]]:
    """Latent MoE (vLLM 0.33 models/nemotron_h.py NemotronHMoE: experts work in
    moe_latent_size, reached through two replicated projections)."""
    size = dim(moe.latent, cfg) if moe.latent else 0
    if not size:
        return cfg.hidden_size, []
    hidden = cfg.hidden_size
    bias = bool(cfg.raw.get("mlp_bias", False))
    return size, [
        linear(
            f"{prefix}.{name}",
            OTHER,
            "ReplicatedLinear",
            n_in,
            [(f"{prefix}.{name}", n_out)],
            layer=i,
            bias=bias,
            tp_split="replicated",
        )
        for name, n_in, n_out in (
            ("fc1_latent_proj", hidden, size),
            ("fc2_latent_proj", size, hidden),
        )
    ]


def _moe(
    record: Record, cfg: ModelConfig, i: int, p: str, names: Collection[str] | None
) -> list[Module]:
    moe = record.moe or MoeRecord()
    raw = cfg.raw
    prefix = f"{p}.{moe.prefix}"
    hidden = cfg.hidden_size
    router_ckpt = f"{prefix}.{moe.router_ckpt or moe.router}"
    params: tuple[Param, ...] = ()
    correction = (
        record.flag(moe.correction_bias, raw)
        if isinstance(moe.correction_bias, bool)
        else raw.get(moe.correction_bias) in (True, "noaux_tc")
    )
    if correction and moe.correction_bias_owner == "router":
        params = (Param("e_score_correction_bias", (cfg.num_experts,), "F32"),)
    modules = [
        linear(
            f"{prefix}.{moe.router}",
            ROUTER,
            "GateLinear",
            hidden,
            [(router_ckpt, cfg.num_experts)],
            layer=i,
            bias=moe.router_bias,
            receives_quant_config=moe.router_quant,
            tp_split="replicated",
            params=params,
            weight_dtype="F32" if moe.router_fp32 else None,
        )
    ]
    if correction and moe.correction_bias_owner == "moe":
        modules.append(
            Module(
                name=f"{prefix}.e_score_correction_bias",
                kind="moe.correction_bias",
                layer_class="Parameter",
                layer=i,
                receives_quant_config=False,
                params=(Param("e_score_correction_bias", (cfg.num_experts,), "F32"),),
                ckpt_name=prefix,
                tp_split="replicated",
            )
        )
    shared = _shared_size(moe, cfg) if moe.shared else 0
    if shared:
        modules += _mlp(
            record,
            f"{prefix}.{moe.shared}",
            hidden,
            shared,
            i,
            False,
            (SHARED_GATE_UP, SHARED_DOWN),
        )
    if moe.shared_gate:
        modules.append(
            linear(
                f"{prefix}.{moe.shared_gate}",
                SHARED_GATE,
                "ReplicatedLinear",
                hidden,
                [(f"{prefix}.{moe.shared_gate}", 1)],
                layer=i,
                receives_quant_config=False,
                tp_split="replicated",
            )
        )
    gate, up, down = moe.expert_names
    inter = cfg.moe_intermediate_size or cfg.intermediate_size
    expert_hidden, latent = _latent(moe, cfg, i, prefix)
    modules += latent
    experts = Experts(
        cfg.num_experts,
        expert_hidden,
        inter,
        gate,
        up,
        down,
        fused_layout=_experts_layout(moe, cfg, names),
        gated=moe.gated,
    )
    modules.append(routed_experts(f"{prefix}.{moe.experts}", i, experts))
    return modules


def moe_layer(record: Record, cfg: ModelConfig, i: int, kind: LayerKind) -> bool:
    """Whether decoder layer i has a MoE block (the record's rule, as each vLLM model file)."""
    if cfg.num_experts <= 0 or kind.ffn == "none":
        return False
    rule = (record.moe or MoeRecord()).layers
    if rule == "pattern":
        return kind.ffn == "moe"
    if rule == "decoder_sparse_step":
        # vLLM 0.33 models/qwen2_moe.py / qwen3_moe.py decoder layer
        step = max(cfg.decoder_sparse_step, 1)
        return i not in cfg.mlp_only_layers and (i + 1) % step == 0
    if rule == "first_k_dense":
        # vLLM 0.33 models/deepseek_v2.py / glm4_moe.py / ernie45_moe.py
        return i >= cfg.first_k_dense_replace and i % max(cfg.moe_layer_freq, 1) == 0
    if rule == "moe_layer_start":
        start = int(cfg.raw.get("moe_layer_start_index", 0) or 0)
        end = int(cfg.raw.get("moe_layer_end_index", cfg.num_layers - 1) or cfg.num_layers - 1)
        step = int(cfg.raw.get("moe_layer_interval", 1) or 1)
        # vLLM 0.33 models/ernie45_moe.py Ernie4_5_MoeDecoderLayer
        return start <= i <= end and (i + 1) % step == 0
    return True


def build(
    cfg: ModelConfig,
    record: Record,
    names: Collection[str] | None = None,
    release: str | None = None,
) -> Inventory:
    """The inventory of a decoder described by `record`; `names`: the checkpoint's tensor
    names when there are any (they decide between layouts vLLM loads alike); `release`: the
    vLLM release mirrored (None: the newest)."""
    raw: dict[str, Any] = cfg.raw
    plan = plan_layers(record, raw, cfg.num_layers, cfg.model_type)
    since = record.window_plus_one
    if since and (release is None or Release.parse(release) >= Release.parse(since)):
        # the layer sees window + 1 tokens; vLLM passes that as its sliding window (0.29+
        # models/commandr.py) and sizes the cache by it
        plan = [
            dataclasses.replace(k, window=k.window + 1)
            if k.window and k.attention == "sliding"
            else k
            for k in plan
        ]
    p0 = record.prefix
    modules: list[Module] = []
    modules += tower_modules(record, cfg, raw)
    modules.append(
        embedding(f"{p0}.{record.embed}", cfg.vocab_size, cfg.hidden_size, record.embed_quant)
    )
    cache: list[CacheLayer] = []
    mlp_bias = record.flag(record.mlp_bias, raw)
    for i, kind in enumerate(plan):
        p = f"{p0}.layers.{i}"
        if kind.mixer != "none" or kind.ffn != "none":
            modules += [_norm(f"{p}.{n}", cfg.hidden_size, i, record) for n in _norms(record, kind)]
        if kind.mixer == "attention":
            modules += _attention(record, cfg, i, p)
            cache.append(
                CacheLayer(
                    i,
                    kind.attention,
                    kind.window,
                    kv_heads=cfg.num_kv_heads,
                    head_size=cfg.head_dim,
                    head_size_v=cfg.head_dim,
                )
            )
        if kind.mixer not in ("attention", "none") or kind.parallel_mamba:
            mods, layer_cache = mixer_modules(record, cfg, i, p, kind)
            modules += mods
            cache += layer_cache
        if kind.ffn != "none":
            moe = moe_layer(record, cfg, i, kind)
            if moe:
                modules += _moe(record, cfg, i, p, names)
            if not moe or (record.moe and record.moe.also_dense):
                inter = dim(record.mlp_size, cfg) or cfg.intermediate_size
                modules += _mlp(record, f"{p}.{record.mlp}", cfg.hidden_size, inter, i, mlp_bias)
    modules.append(_norm(f"{p0}.{record.final_norm}", cfg.hidden_size, None, record))
    tied = record.tie == "always" or (record.tie == "config" and cfg.tie_word_embeddings)
    if not tied:
        head = lm_head(cfg.vocab_size, cfg.hidden_size)
        if record.lm_head_bias:
            head = dataclasses.replace(head, bias=True)
        if record.lm_head != "lm_head":
            head = Module(
                name=record.lm_head,
                kind=head.kind,
                layer_class=head.layer_class,
                in_features=head.in_features,
                shards=(type(head.shards[0])(record.lm_head, cfg.vocab_size),),
                bias=head.bias,
                tp_split=head.tp_split,
            )
        modules.append(head)
    packed = dict(record.packed) or _packed(record, modules)
    notes = record.notes
    return Inventory(
        architecture=cfg.architecture,
        modules=tuple(modules),
        packed_modules_mapping=packed,
        notes=notes,
        cache_layers=tuple(cache),
        derivation="exact" if record.exact else "config",
        ckpt_prefixes=_ckpt_prefixes(record),
        # vLLM 0.33 models/glm4_moe.py Glm4MoeModel.load_weights skips spec-decode layers
        loader=LoaderRules(skip_layers_from=cfg.num_layers) if record.skip_mtp else LoaderRules(),
    )


def _norms(record: Record, kind: LayerKind) -> tuple[str, ...]:
    if kind.mixer in ("attention", "mla") or kind.parallel_mamba or not record.mixer:
        return record.layer_norms
    return tuple(record.mixer.get("norms", record.layer_norms))


def _packed(record: Record, modules: list[Module]) -> dict[str, tuple[str, ...]]:
    packed: dict[str, tuple[str, ...]] = {record.qkv_name: record.qkv_ckpt}
    if any(m.kind in (MLP_GATE_UP, SHARED_GATE_UP) for m in modules) and record.mlp_kind != "plain":
        packed[record.gate_up_name] = record.gate_up_ckpt
    return packed


def _ckpt_prefixes(record: Record) -> tuple[tuple[str, str], ...]:
    return tuple((ckpt, vllm) for ckpt, vllm in record.ckpt_map)
