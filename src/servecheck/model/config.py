"""Parse a Hugging Face config.json into the dimensions servecheck reasons about."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from servecheck.errors import InputError

# Multimodal configs nest the language model under one of these keys.
_TEXT_CONFIG_KEYS = ("text_config", "language_config", "llm_config", "thinker_config")


@dataclass(frozen=True)
class ModelConfig:
    """The architecture facts of a checkpoint, read from config.json.

    Names follow Hugging Face's config keys where one exists. `raw` is the text-model
    config dict (nested `text_config` merged over the top level).
    """

    architecture: str
    model_type: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    dtype: str | None
    max_position_embeddings: int | None
    attention_bias: bool = False
    mlp_bias: bool = False
    use_qk_norm: bool = False
    hidden_act: str = "silu"
    # MoE
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int = 0
    first_k_dense_replace: int = 0
    moe_layer_freq: int = 1
    decoder_sparse_step: int = 1
    mlp_only_layers: tuple[int, ...] = ()
    n_group: int | None = None
    topk_group: int | None = None
    topk_method: str | None = None
    routed_scaling_factor: float | None = None
    # MLA (DeepSeek-V2/V3)
    q_lora_rank: int | None = None
    kv_lora_rank: int | None = None
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # Speculative (MTP) layers stored after the decoder layers.
    num_nextn_predict_layers: int = 0
    sliding_window: int | None = None
    layer_types: tuple[str, ...] = ()
    # Every name in config.json's `architectures` (vLLM tries them in order).
    architectures: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None and self.qk_rope_head_dim > 0


def text_config(config: dict) -> dict:
    """The language-model part of a config: a nested text config merged over the top level."""
    for key in _TEXT_CONFIG_KEYS:
        nested = config.get(key)
        if isinstance(nested, dict):
            merged = {k: v for k, v in config.items() if k not in _TEXT_CONFIG_KEYS}
            merged.update(nested)
            if "architectures" in config:
                merged.setdefault("architectures", config["architectures"])
            return merged
    return config


def parse_config(config: dict) -> ModelConfig:
    """Build a ModelConfig; raises InputError when a required field is missing or malformed.

    Keys the architecture's transformers config class would default (its record's
    `defaults`) are filled in when config.json leaves them out."""
    archs = config.get("architectures") or text_config(config).get("architectures") or []
    if not isinstance(archs, list) or not archs or not all(isinstance(a, str) for a in archs):
        raise InputError("config.json has no 'architectures' list; cannot tell which model it is")
    cfg = _with_defaults(text_config(config), str(archs[0]))
    hidden = _int(cfg, "hidden_size", "n_embd", "d_model", "dim", "model_dim")
    heads = _opt_int(cfg, "num_attention_heads", "n_head", "num_heads", "n_heads") or 0
    head_dim = _opt_int(cfg, "head_dim", "attention_head_dim") or (hidden // heads if heads else 0)
    num_experts = (
        _opt_int(cfg, "n_routed_experts", "num_experts", "num_local_experts", "moe_num_experts")
        or 0
    )
    return ModelConfig(
        architecture=str(archs[0]),
        model_type=str(cfg.get("model_type", "")),
        hidden_size=hidden,
        num_layers=_int(cfg, "num_hidden_layers", "n_layer", "num_layers", "n_layers"),
        num_heads=heads,
        num_kv_heads=_opt_int(cfg, "num_key_value_heads", "num_kv_heads", "n_kv_heads") or heads,
        head_dim=head_dim,
        intermediate_size=_opt_int(cfg, "intermediate_size", "ffn_hidden_size") or 0,
        vocab_size=_int(cfg, "vocab_size", "padded_vocab_size", "n_vocab"),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        dtype=_dtype(cfg),
        max_position_embeddings=_opt_int(cfg, "max_position_embeddings"),
        attention_bias=bool(cfg.get("attention_bias", cfg.get("qkv_bias", False))),
        mlp_bias=bool(cfg.get("mlp_bias", False)),
        use_qk_norm=bool(cfg.get("use_qk_norm", False)),
        hidden_act=str(cfg.get("hidden_act", "silu")),
        num_experts=num_experts,
        num_experts_per_tok=_opt_int(cfg, "num_experts_per_tok", "moe_top_k", "moe_k", "moe_topk")
        or 0,
        moe_intermediate_size=_opt_int(cfg, "moe_intermediate_size") or 0,
        num_shared_experts=_opt_int(cfg, "n_shared_experts", "moe_num_shared_experts") or 0,
        shared_expert_intermediate_size=_opt_int(cfg, "shared_expert_intermediate_size") or 0,
        first_k_dense_replace=_opt_int(cfg, "first_k_dense_replace") or 0,
        moe_layer_freq=_opt_int(cfg, "moe_layer_freq") or 1,
        decoder_sparse_step=_opt_int(cfg, "decoder_sparse_step") or 1,
        mlp_only_layers=tuple(int(i) for i in cfg.get("mlp_only_layers") or ()),
        n_group=_opt_int(cfg, "n_group"),
        topk_group=_opt_int(cfg, "topk_group"),
        topk_method=cfg.get("topk_method"),
        routed_scaling_factor=cfg.get("routed_scaling_factor"),
        q_lora_rank=_opt_int(cfg, "q_lora_rank"),
        kv_lora_rank=_opt_int(cfg, "kv_lora_rank"),
        qk_nope_head_dim=_opt_int(cfg, "qk_nope_head_dim") or 0,
        qk_rope_head_dim=_opt_int(cfg, "qk_rope_head_dim") or 0,
        v_head_dim=_opt_int(cfg, "v_head_dim") or 0,
        num_nextn_predict_layers=_opt_int(cfg, "num_nextn_predict_layers") or 0,
        sliding_window=_opt_int(cfg, "sliding_window"),
        layer_types=tuple(str(t) for t in cfg.get("layer_types") or ()),
        architectures=tuple(archs),
        raw=cfg,
    )


def _dtype(cfg: dict) -> str | None:
    value = cfg.get("dtype", cfg.get("torch_dtype"))
    return str(value).removeprefix("torch.") if value else None


def _with_defaults(cfg: dict, architecture: str) -> dict:
    from servecheck.model.records import record_for

    record = record_for(architecture)
    if record is None or not record.defaults:
        return cfg
    merged = {k: v for k, v in record.defaults.items() if not k.startswith("sliding_every")}
    merged.update(cfg)
    return merged


def _opt_int(cfg: dict, *keys: str) -> int | None:
    for key in keys:
        value = cfg.get(key)
        if value is None:
            continue
        if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
            # per-layer lists (HunYuan's moe_intermediate_size, num_experts): the largest
            value = max(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise InputError(f"config.json: {key} must be an integer, got {value!r}")
        return int(value)
    return None


def _int(cfg: dict, *keys: str) -> int:
    value = _opt_int(cfg, *keys)
    if value is None:
        raise InputError(f"config.json has no {keys[0]!r}; cannot size the model")
    if value <= 0:
        raise InputError(f"config.json: {keys[0]} must be positive, got {value}")
    return value
