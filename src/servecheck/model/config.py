"""Parse a Hugging Face config.json into the dimensions servecheck reasons about."""

from __future__ import annotations

import math
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
    layers = _num_layers(cfg)
    if num_experts * layers > _limits()["moe"]["max_expert_layers"]:
        raise InputError(
            f"config.json: {num_experts:,} experts in each of {layers:,} layers; servecheck "
            f"handles at most {_limits()['moe']['max_expert_layers']:,} experts in all (no real "
            "model comes near)"
        )
    return ModelConfig(
        architecture=str(archs[0]),
        model_type=_opt_str(cfg, "model_type") or "",
        hidden_size=hidden,
        num_layers=layers,
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
        hidden_act=_opt_str(cfg, "hidden_act") or "silu",
        num_experts=num_experts,
        num_experts_per_tok=_opt_int(cfg, "num_experts_per_tok", "moe_top_k", "moe_k", "moe_topk")
        or 0,
        moe_intermediate_size=_opt_int(cfg, "moe_intermediate_size") or 0,
        num_shared_experts=_opt_int(cfg, "n_shared_experts", "moe_num_shared_experts") or 0,
        shared_expert_intermediate_size=_opt_int(cfg, "shared_expert_intermediate_size") or 0,
        first_k_dense_replace=_opt_int(cfg, "first_k_dense_replace") or 0,
        moe_layer_freq=_opt_int(cfg, "moe_layer_freq") or 1,
        decoder_sparse_step=_opt_int(cfg, "decoder_sparse_step") or 1,
        mlp_only_layers=_int_list(cfg, "mlp_only_layers"),
        n_group=_opt_int(cfg, "n_group"),
        topk_group=_opt_int(cfg, "topk_group"),
        topk_method=_opt_str(cfg, "topk_method"),
        routed_scaling_factor=_opt_float(cfg, "routed_scaling_factor"),
        q_lora_rank=_opt_int(cfg, "q_lora_rank"),
        kv_lora_rank=_opt_int(cfg, "kv_lora_rank"),
        qk_nope_head_dim=_opt_int(cfg, "qk_nope_head_dim") or 0,
        qk_rope_head_dim=_opt_int(cfg, "qk_rope_head_dim") or 0,
        v_head_dim=_opt_int(cfg, "v_head_dim") or 0,
        num_nextn_predict_layers=_opt_int(cfg, "num_nextn_predict_layers") or 0,
        sliding_window=_opt_int(cfg, "sliding_window"),
        layer_types=_str_list(cfg, "layer_types"),
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


def _limits() -> dict[str, dict[str, int]]:
    global _LIMITS
    if _LIMITS is None:
        from servecheck.knowledge import load_toml

        _LIMITS = load_toml("input_limits.toml")
    return _LIMITS


_LIMITS: dict[str, dict[str, int]] | None = None


def _opt_int(cfg: dict, *keys: str) -> int | None:
    """The first of `keys` present, as an integer inside its range (input_limits.toml, under
    the first key's name), or None; anything else is an InputError naming the key."""
    for key in keys:
        value = cfg.get(key)
        if value is None:
            continue
        if isinstance(value, list) and value and all(type(v) is int for v in value):
            # per-layer lists (HunYuan's moe_intermediate_size, num_experts): the largest
            value = max(value)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value != int(value)
        ):
            raise InputError(f"config.json: {key} must be an integer, got {_short(value)}")
        value = int(value)
        limit = _limits().get(keys[0])
        if limit is not None and not limit["min"] <= value <= limit["max"]:
            raise InputError(
                f"config.json: {key} is {value:,}; expected {limit['min']:,} to "
                f"{limit['max']:,} (no real model is outside that range)"
            )
        return value
    return None


def _num_layers(cfg: dict) -> int:
    keys = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
    if _opt_int(cfg, *keys) is None:
        # transformers 5 NemotronHConfig saves layers_block_type and no num_hidden_layers (its
        # num_hidden_layers is a property: the list's length)
        for key in ("layers_block_type", "layer_types"):
            types = cfg.get(key)
            if isinstance(types, list) and types:
                top = _limits()["num_hidden_layers"]["max"]
                if len(types) > top:
                    raise InputError(
                        f"config.json: {key} lists {len(types):,} layers; at most {top:,}"
                    )
                return len(types)
    return _int(cfg, *keys)


def _int(cfg: dict, *keys: str) -> int:
    value = _opt_int(cfg, *keys)
    if value is None:
        raise InputError(f"config.json has no {keys[0]!r}; cannot size the model")
    if value <= 0:
        raise InputError(f"config.json: {keys[0]} must be positive, got {value}")
    return value


def _opt_float(cfg: dict, key: str) -> float | None:
    value = cfg.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"config.json: {key} must be a number, got {_short(value)}")
    return float(value)


def _opt_str(cfg: dict, key: str) -> str | None:
    value = cfg.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"config.json: {key} must be a string, got {_short(value)}")
    return value


def _list(cfg: dict, key: str) -> list:
    value = cfg.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"config.json: {key} must be a list, got {_short(value)}")
    if len(value) > _limits()["lists"]["max_len"]:
        raise InputError(f"config.json: {key} has {len(value):,} entries; not a real model")
    return value


def _int_list(cfg: dict, key: str) -> tuple[int, ...]:
    items = _list(cfg, key)
    top = _limits()["num_hidden_layers"]["max"]
    if not all(type(i) is int and 0 <= i <= top for i in items):
        raise InputError(f"config.json: {key} must list layer numbers, got {_short(items)}")
    return tuple(items)


def _str_list(cfg: dict, key: str) -> tuple[str, ...]:
    items = _list(cfg, key)
    if not all(isinstance(i, str) for i in items):
        raise InputError(f"config.json: {key} must be a list of strings, got {_short(items)}")
    return tuple(items)


def _short(value: Any) -> str:
    """A value for a message: at most 60 characters of its repr."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def raw_number(
    values: dict, key: str, default: float | None = None, *, low: float = 0.0, high: float = 2**40
) -> float | None:
    """A number read from a raw config dict (config.json or a dict inside it), inside
    [low, high]; `default` when absent or null. Anything else is an InputError naming the key,
    so arithmetic downstream never meets a string, a list, an infinity or an absurd size."""
    value = values.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"config.json: {key} must be a number, got {_short(value)}")
    if not low <= value <= high:
        bounds = " to ".join(f"{int(b):,}" if b == int(b) else f"{b:g}" for b in (low, high))
        raise InputError(f"config.json: {key} is {value}; expected {bounds}")
    return value
