"""Architecture records (knowledge/architectures.toml): what each architecture is to vLLM.

One declarative record per architecture: module names in vLLM's naming, biases and extra
norms, how the layers' attention kinds and MoE blocks are laid out (which config convention
decides them), experts, towers, and how vLLM maps checkpoint names onto its modules. A record
may name a `base` record and override some of its fields. The `[generic]` record is the
derivation used for any architecture without a record (Llama conventions).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from typing import Any

from servecheck.knowledge import load_toml

# A boolean, or the config key holding it (e.g. "attention_bias").
Flag = bool | str


@dataclass(frozen=True)
class MoeRecord:
    """The MoE block of a decoder layer (vLLM names)."""

    prefix: str = "mlp"  # e.g. "mlp", "block_sparse_moe", "feed_forward"
    router: str = "gate"
    router_ckpt: str = ""  # the router's checkpoint name when vLLM renames it ("" = same)
    router_quant: bool = True  # GateLinear built with quant_config
    router_fp32: bool = False
    router_bias: bool = False
    correction_bias: Flag = False  # e_score_correction_bias (fp32); config key or bool
    correction_bias_owner: str = "router"  # "router" (gate.e_score...) or "moe" (mlp.e_score...)
    experts: str = "experts"
    expert_names: tuple[str, str, str] = ("gate_proj", "up_proj", "down_proj")
    expert_bias: bool = False
    # False: experts have no gate (up and down projections only, ReLU^2; Nemotron-H)
    gated: bool = True
    # How the checkpoint may store all experts of a layer in one tensor per projection (vLLM's
    # loader accepts it beside per-expert tensors): "" (per expert only), "gate_up_3d"
    # (Llama 4: experts.gate_up_proj [E, H, 2I], experts.down_proj [E, I, H]), "granite"
    # (input_linear.weight [E, 2I, H], output_linear.weight [E, H, I]).
    fused: str = ""
    shared: str = ""  # shared-expert MLP prefix inside the block ("" = none)
    # config key of the shared expert's intermediate size, or "n_shared_experts" (multiplies
    # moe_intermediate_size), or "intermediate_size"
    shared_size: str = "shared_expert_intermediate_size"
    shared_gate: str = ""  # ReplicatedLinear(hidden, 1) gating the shared expert
    # Which layers are MoE: "all", "decoder_sparse_step" (Qwen MoE), "first_k_dense"
    # (DeepSeek/GLM), "interleave" (Llama 4 interleave_moe_layer_step), "period"
    # (Jamba expert_layer_period/offset), "pattern" (the layer pattern says), "moe_layer_freq"
    layers: str = "all"
    also_dense: bool = False  # a dense MLP beside the MoE block (Granite 4.0 shared_mlp)
    latent: str = ""  # config key of a latent MoE width (Nemotron 3: moe_latent_size)


@dataclass(frozen=True)
class Record:
    """One architecture as vLLM builds it. Defaults are the generic (Llama-style) decoder."""

    name: str
    source: str = ""  # the vLLM model file and class mirrored, e.g. "models/gemma2.py"
    exact: bool = True
    layout: str = "decoder"  # decoder | deepseek | gpt_oss | hybrid (the code that builds it)
    # transformers config-class defaults for keys save_pretrained may leave out
    defaults: dict[str, Any] = field(default_factory=dict)
    text_config: str = ""  # key nesting the language model's config ("" = top level)
    # vLLM module prefixes and the checkpoint prefixes they load from
    prefix: str = "model"  # the decoder stack: {prefix}.layers.N
    lm_head: str = "lm_head"
    lm_head_bias: bool = False
    embed: str = "embed_tokens"
    embed_quant: bool = True
    final_norm: str = "norm"
    tie: str = "config"  # config (tie_word_embeddings) | always | never
    norm_class: str = "RMSNorm"
    norm_bias: bool = False  # LayerNorm with bias
    layer_norms: tuple[str, ...] = ("input_layernorm", "post_attention_layernorm")
    # attention
    attn: str = "self_attn"  # "" = the projections hang on the decoder layer itself
    attn_ckpt: str = ""  # the checkpoint's attention prefix when vLLM's differs ("" = same)
    qkv: str = "split"  # split: q/k/v_proj stored | fused: stored as qkv_proj
    qkv_bias: Flag = "attention_bias"
    o_bias: Flag = "attention_bias"
    qkv_name: str = "qkv_proj"
    qkv_ckpt: tuple[str, ...] = ("q_proj", "k_proj", "v_proj")  # one name: stored fused
    o_name: str = "o_proj"
    q_gate: Flag = False  # q projection doubled by an output gate (Qwen3-Next)
    qk_norm: Flag = False
    qk_norm_shape: str = "head"  # head: RMSNorm(head_dim) | heads: RMSNorm(heads * head_dim)
    qk_norm_names: tuple[str, str] = ("q_norm", "k_norm")
    attn_pattern: str = "window"  # how each layer's attention kind is decided (model/layers.py)
    # from this vLLM release the sliding layers' window is the config's + 1 ("" = never)
    window_plus_one: str = ""
    # MLP
    mlp: str = "mlp"
    mlp_kind: str = "gated"  # gated (gate/up -> gate_up_proj) | gated_fused | plain
    mlp_names: tuple[str, str] = ("up_proj", "down_proj")  # plain MLP's two linears
    mlp_bias: Flag = "mlp_bias"
    mlp_size: str = "intermediate_size"  # config key of the dense MLP's intermediate size
    gate_up_name: str = "gate_up_proj"
    gate_up_ckpt: tuple[str, ...] = ("gate_proj", "up_proj")  # one name: stored fused
    down_name: str = "down_proj"
    # (checkpoint prefix, vLLM prefix) pairs vLLM's hf_to_vllm_mapper applies
    ckpt_map: tuple[tuple[str, str], ...] = ()
    moe: MoeRecord | None = None
    # hybrid mixers (Mamba, linear attention): prefix and kind per record
    mixer: dict[str, Any] = field(default_factory=dict)
    towers: tuple[dict[str, Any], ...] = ()
    mtp: str = ""  # "" | "deepseek" (num_nextn_predict_layers after the decoder layers)
    # the loader skips layers from num_hidden_layers on (MTP layers stored after the decoder)
    skip_mtp: bool = False
    packed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def flag(self, value: Flag, cfg: dict[str, Any]) -> bool:
        """A record flag: a literal bool, or the config key holding it (absent = False)."""
        if isinstance(value, bool):
            return value
        return bool(cfg.get(value, False))


_RECORD_FIELDS = {f.name for f in fields(Record)}
_MOE_FIELDS = {f.name for f in fields(MoeRecord)}


@functools.cache
def _table() -> dict[str, Any]:
    return load_toml("architectures.toml")


def _merged(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    table = _table()
    raw = table["generic"] if name == "generic" else table["arch"][name]
    base_name = raw.get("base", "generic" if name != "generic" else None)
    if base_name is None:
        return dict(raw)
    if base_name in seen:
        raise ValueError(f"architectures.toml: base cycle through {name}")
    merged = _merged(base_name, (*seen, name))
    if base_name == "generic":
        merged.pop("exact", None)  # a record is exact unless it says otherwise
    for key, value in raw.items():
        if key == "moe" and isinstance(merged.get("moe"), dict) and isinstance(value, dict):
            merged["moe"] = {**merged["moe"], **value}
        else:
            merged[key] = value
    return merged


def _build(name: str, raw: dict[str, Any]) -> Record:
    unknown = set(raw) - _RECORD_FIELDS - {"base", "architectures"}
    if unknown:
        raise ValueError(f"architectures.toml [{name}]: unknown keys {sorted(unknown)}")
    kwargs: dict[str, Any] = {k: v for k, v in raw.items() if k in _RECORD_FIELDS}
    moe = raw.get("moe")
    if isinstance(moe, dict):
        bad = set(moe) - _MOE_FIELDS
        if bad:
            raise ValueError(f"architectures.toml [{name}].moe: unknown keys {sorted(bad)}")
        mk = dict(moe)
        if "expert_names" in mk:
            mk["expert_names"] = tuple(mk["expert_names"])
        kwargs["moe"] = MoeRecord(**mk)
    for key in ("layer_norms", "notes", "mlp_names", "qkv_ckpt", "gate_up_ckpt", "qk_norm_names"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    if "ckpt_map" in kwargs:
        kwargs["ckpt_map"] = tuple(tuple(pair) for pair in kwargs["ckpt_map"])
    if "towers" in kwargs:
        kwargs["towers"] = tuple(kwargs["towers"])
    if "packed" in kwargs:
        kwargs["packed"] = {k: tuple(v) for k, v in kwargs["packed"].items()}
    kwargs["name"] = name
    return Record(**kwargs)


@functools.cache
def _index() -> dict[str, Record]:
    """Every architecture name a record covers (its own name and `architectures` aliases)."""
    out: dict[str, Record] = {}
    for name, raw in _table()["arch"].items():
        record = _build(name, _merged(name))
        out[name] = record
        for alias in raw.get("architectures", ()):
            out[alias] = record
    return out


def record_for(architecture: str) -> Record | None:
    """The exact record of an architecture, or None."""
    return _index().get(architecture)


@functools.cache
def generic() -> Record:
    return _build("generic", _merged("generic"))


def all_records() -> dict[str, Record]:
    return dict(_index())
