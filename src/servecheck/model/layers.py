"""What each decoder layer is: its mixer (attention kind, Mamba, linear attention) and its
feed-forward (dense MLP or MoE), decided by the config convention the architecture uses.

Patterns (a record's `attn_pattern`), each mirroring the transformers config class (which
computes the list when config.json leaves it out) and the vLLM model that reads it:

- ``window``: every layer uses config ``sliding_window`` (if set and enabled), unless
  ``layer_types`` picks the sliding layers (vLLM 0.33 models/llama.py LlamaAttention).
- ``layer_types``: ``layer_types[i]`` ("full_attention", "sliding_attention",
  "chunked_attention", "linear_attention", "mamba", "attention"); when absent, every
  ``sliding_every``-th layer is full and the others slide (Gemma 2/3, Cohere 2, EXAONE 4).
- ``alternate``: sliding on even layers (gpt-oss).
- ``hybrid_override_pattern``: one character per layer: M Mamba-2, * attention, - MLP,
  E MoE (Nemotron-H).
- ``attn_layer_period``: attention where ``i % attn_layer_period == attn_layer_offset``,
  Mamba elsewhere; MoE where ``i % expert_layer_period == expert_layer_offset`` (Jamba).
- ``parallel_hybrid``: attention and Mamba-2 side by side in every layer (Falcon-H1).
- ``chunked_nope``: chunked local attention on RoPE layers, full attention on the NoPE ones
  (``no_rope_layers[i] == 0``), Llama 4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from servecheck.model.records import Record

# transformers Qwen2Config / Qwen3Config (and their MoE variants) keep `sliding_window` but
# disable it unless use_sliding_window; vLLM reads hf_text_config.sliding_window
# (config/model.py get_sliding_window).
_USE_SLIDING_WINDOW_FLAG = ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe")


@dataclass(frozen=True)
class LayerKind:
    """One decoder layer: its sequence mixer and its feed-forward block."""

    mixer: str  # attention | mla | mamba | mamba2 | gdn | linear_attention | none
    attention: str = ""  # full | sliding | chunked (attention mixers only)
    window: int | None = None  # sliding window or attention chunk size, tokens
    ffn: str = "dense"  # dense | moe | none
    parallel_mamba: bool = False  # Falcon-H1: a Mamba-2 mixer beside the attention


def _int(cfg: dict[str, Any], key: str, default: int = 0) -> int:
    value = cfg.get(key)
    return (
        int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default
    )


def config_window(cfg: dict[str, Any], model_type: str) -> int | None:
    window = cfg.get("sliding_window")
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        return None
    if model_type in _USE_SLIDING_WINDOW_FLAG and not cfg.get("use_sliding_window", False):
        return None
    if cfg.get("use_sliding_window") is False:
        # the Qwen-family convention: a window kept in the config but switched off
        return None
    return window


def _every(record: Record, cfg: dict[str, Any]) -> int:
    every = record.defaults.get("sliding_every", 0)
    if isinstance(every, str):
        every = _int(cfg, every, int(record.defaults.get(every + "_default", 0)))
    return int(every)


def layer_types(record: Record, cfg: dict[str, Any], n: int) -> list[str]:
    """The config's layer_types, or the list its transformers config class would compute."""
    given = cfg.get("layer_types")
    if isinstance(given, list) and len(given) >= n:
        return [str(t) for t in given[:n]]
    every = _every(record, cfg)
    if every > 0:
        # transformers Gemma2/Gemma3/Cohere2/Exaone4 configs: full on every Nth layer
        return ["full_attention" if (i + 1) % every == 0 else "sliding_attention" for i in range(n)]
    interval = _int(cfg, "full_attention_interval", 0)
    if interval > 0:
        # transformers Qwen3NextConfig: linear attention except every Nth layer
        return [
            "full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(n)
        ]
    block = cfg.get("layers_block_type")
    if isinstance(block, list) and len(block) >= n:
        return [str(t) for t in block[:n]]
    return ["full_attention"] * n


def plan_layers(record: Record, cfg: dict[str, Any], n: int, model_type: str) -> list[LayerKind]:
    """The kind of each of the n decoder layers."""
    pattern = record.attn_pattern
    window = config_window(cfg, model_type)
    if pattern == "hybrid_override_pattern":
        return _nemotron_h(_hybrid_pattern(cfg), n)
    if pattern == "attn_layer_period":
        return _jamba(cfg, n)
    if pattern == "parallel_hybrid":
        return [
            LayerKind("attention", "full", None, "dense", parallel_mamba=True) for _ in range(n)
        ]
    if pattern == "chunked_nope":
        return _llama4(cfg, n)
    if pattern == "alternate":
        return [
            LayerKind("attention", "sliding", window)
            if window and i % 2 == 0
            else LayerKind("attention", "full")
            for i in range(n)
        ]
    if pattern == "layer_types" or (pattern == "window" and cfg.get("layer_types")):
        return [_from_type(t, window, cfg) for t in layer_types(record, cfg, n)]
    # "window": vLLM 0.33 layers/attention/attention.py: without a per-layer window every
    # layer uses cache_config.sliding_window (the config's)
    if window:
        return [LayerKind("attention", "sliding", window) for _ in range(n)]
    return [LayerKind("attention", "full") for _ in range(n)]


def _from_type(kind: str, window: int | None, cfg: dict[str, Any]) -> LayerKind:
    if kind == "sliding_attention":
        return (
            LayerKind("attention", "sliding", window) if window else LayerKind("attention", "full")
        )
    if kind == "chunked_attention":
        chunk = _int(cfg, "attention_chunk_size")
        return LayerKind("attention", "chunked", chunk) if chunk else LayerKind("attention", "full")
    if kind == "linear_attention":
        return LayerKind("gdn")
    if kind == "mamba":
        return LayerKind("mamba2")
    return LayerKind("attention", "full")


# transformers 5 configuration_nemotron_h.py _list_to_pattern (and the legacy names it remaps)
_BLOCK_CHAR = {
    "linear_attention": "M",
    "mamba": "M",
    "full_attention": "*",
    "attention": "*",
    "mlp": "-",
    "moe": "E",
}


def _hybrid_pattern(cfg: dict[str, Any]) -> str:
    """Nemotron-H's hybrid_override_pattern, or the layers_block_type list transformers 5
    saves instead (vLLM reads the pattern through the config class's property)."""
    pattern = cfg.get("hybrid_override_pattern")
    if isinstance(pattern, str) and pattern:
        return pattern
    types = cfg.get("layers_block_type")
    if isinstance(types, list):
        return "".join(_BLOCK_CHAR.get(str(t), "-") for t in types)
    return ""


def _nemotron_h(pattern: str, n: int) -> list[LayerKind]:
    # vLLM 0.33 models/nemotron_h.py ALL_DECODER_LAYER_TYPES
    out = []
    for ch in pattern[:n]:
        if ch == "M":
            out.append(LayerKind("mamba2", ffn="none"))
        elif ch == "*":
            out.append(LayerKind("attention", "full", ffn="none"))
        elif ch == "E":
            out.append(LayerKind("none", ffn="moe"))
        else:
            out.append(LayerKind("none", ffn="dense"))
    return out


def _jamba(cfg: dict[str, Any], n: int) -> list[LayerKind]:
    # transformers JambaConfig.layers_block_type / layers_num_experts
    period, offset = _int(cfg, "attn_layer_period", 8), _int(cfg, "attn_layer_offset", 4)
    e_period, e_offset = _int(cfg, "expert_layer_period", 2), _int(cfg, "expert_layer_offset", 1)
    experts = _int(cfg, "num_experts", 16)
    out = []
    for i in range(n):
        mixer = LayerKind("attention", "full") if i % period == offset else LayerKind("mamba")
        moe = experts > 1 and i % e_period == e_offset
        out.append(LayerKind(mixer.mixer, mixer.attention, None, "moe" if moe else "dense"))
    return out


def _llama4(cfg: dict[str, Any], n: int) -> list[LayerKind]:
    # vLLM 0.33 models/llama4.py Llama4Attention: nope = no_rope_layers[i] == 0; RoPE layers
    # use chunked local attention of attention_chunk_size
    nope = cfg.get("no_rope_layers")
    chunk = _int(cfg, "attention_chunk_size")
    if not isinstance(nope, list) or len(nope) < n:
        # transformers Llama4TextConfig: no_rope_layers default, every 4th layer NoPE
        every = _int(cfg, "no_rope_layer_interval", 4)
        nope = [int((i + 1) % every != 0) for i in range(n)]
    step = _int(cfg, "interleave_moe_layer_step", 1)
    experts = _int(cfg, "num_local_experts", 0)
    out = []
    for i in range(n):
        moe = experts > 0 and step > 0 and (i + 1) % step == 0
        ffn = "moe" if moe else "dense"
        if nope[i] == 0 or not chunk:
            out.append(LayerKind("attention", "full", None, ffn))
        else:
            out.append(LayerKind("attention", "chunked", chunk, ffn))
    return out
