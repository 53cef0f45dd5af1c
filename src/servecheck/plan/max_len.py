"""max_model_len exactly as vLLM derives and verifies it, per release.

vLLM config/model.py `_get_and_verify_max_len` (0.24, 0.33; `config.py` before 0.10.1) with
`derive_max_model_len_and_key` (transformers_utils/model_arch_config_convertor.py, 0.14+): the
smallest length key in the config, `model_max_length` when present, the sliding window when it
is disabled, tokenizer_config.json's `model_max_length` (pooling models with absolute position
embeddings only), then the RoPE factor for the types that scale the length. What changed between
releases (which RoPE types scale, YaRN from `original_max_position_embeddings`, `-1`/auto) comes
from knowledge/vllm_max_len.toml, extracted from the wheels.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from servecheck.knowledge import load_toml
from servecheck.versions import Release

DEFAULT_LEN = 2048  # vLLM: no length key in the config


@dataclass(frozen=True)
class MaxLen:
    """The length vLLM will serve, its derived maximum, and how it got there."""

    derived: int  # the model's maximum as vLLM derives it
    key: str | None  # the config key it came from (vLLM's max_len_key)
    value: int  # max_model_len vLLM uses: the requested length, else the derived
    requested: int | None  # --max-model-len as given (-1 = auto)
    steps: tuple[str, ...]  # how the maximum was derived, in words
    over_limit: bool = False  # requested > derived (and model_max_length)
    allowed_by_env: bool = False  # ... but VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 lets it through
    auto: bool = False  # -1 / auto: vLLM shortens it to what the memory holds
    vllm_text: str | None = None  # vLLM's error, when over the limit

    @property
    def why(self) -> str:
        return "; ".join(self.steps)


@functools.cache
def _rules() -> list[dict[str, Any]]:
    return list(load_toml("vllm_max_len.toml")["rule"])


def rules_for(release: str) -> dict[str, Any]:
    """The extracted behaviour of `release` (the nearest extracted one when outside)."""
    wanted = Release.parse(release)
    rows = _rules()
    for row in rows:
        if Release.parse(row["from"]) <= wanted <= Release.parse(row["to"]):
            return row
    return rows[-1] if wanted > Release.parse(rows[-1]["to"]) else rows[0]


def rope_parameters(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """RoPE settings per layer type (`rope_parameters`, or the legacy `rope_scaling`)."""
    raw = config.get("rope_parameters") or config.get("rope_scaling")
    if not isinstance(raw, dict) or not raw:
        return []
    nested = all(isinstance(v, dict) for v in raw.values())
    items = list(raw.values()) if nested else [raw]
    out = []
    for rp in items:
        rp = dict(rp)
        # vLLM transformers_utils/config.py patch_rope_parameters: legacy names
        rope_type = rp.get("rope_type", rp.get("type", "default"))
        rope_type = {"su": "longrope", "mrope": "default"}.get(rope_type, rope_type)
        rp["rope_type"] = rope_type
        out.append(rp)
    return out


def derive_max_len(
    config: Mapping[str, Any],
    release: str,
    *,
    requested: int | None = None,
    env: Mapping[str, str] | None = None,
    disable_sliding_window: bool = False,
    sliding_window: int | None = None,
    tokenizer_config: Mapping[str, Any] | None = None,
    pooling: bool = False,
) -> MaxLen:
    """`config` is the (text) config after --hf-overrides; `release` the vLLM release."""
    rules = rules_for(release)
    steps: list[str] = []
    derived: float = float("inf")
    key: str | None = None
    for name in rules["possible_keys"]:
        value = config.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value < derived:
                key = name
            derived = min(derived, value)
    if key:
        steps.append(f"{key} = {int(derived):,}")
    if rules["model_max_length_wins"] and config.get("model_max_length"):
        key, derived = "model_max_length", config["model_max_length"]
        steps.append(f"model_max_length = {int(derived):,} replaces it")
    if disable_sliding_window and sliding_window is not None and sliding_window < derived:
        key, derived = "sliding_window", sliding_window
        steps.append(f"--disable-sliding-window: capped at the window, {sliding_window:,}")
    has_absolute = config.get("position_embedding_type") == "absolute"
    if tokenizer_config and (
        not rules["tokenizer_config_pooling_only"] or (pooling and has_absolute)
    ):
        tok_len = tokenizer_config.get("model_max_length")
        if isinstance(tok_len, int | float) and tok_len < derived:
            derived = tok_len
            steps.append(f"tokenizer_config.json model_max_length = {int(tok_len):,}")
    if derived == float("inf"):
        if requested is not None and requested != -1:
            return MaxLen(
                DEFAULT_LEN, None, requested, requested, ("no length key in config.json",)
            )
        derived = DEFAULT_LEN
        steps.append(f"no length key in config.json: vLLM assumes {DEFAULT_LEN:,}")
    rope = rope_parameters(config)
    model_type = str(config.get("model_type", ""))
    if rope and not any(t in model_type for t in rules["skip_scaling_model_types"]):
        derived = _scale(derived, rope, rules, config, steps)
    elif rope and any(rp.get("factor") for rp in rope):
        steps.append(f"{model_type}: the length is already scaled, the RoPE factor is not applied")
    derived_int = int(derived)
    if requested is None or (requested == -1 and rules["auto_value"]):
        value = derived_int
        if (
            any(rp["rope_type"] == "longrope" for rp in rope)
            and rules["longrope_defaults_to_original"]
        ):
            value = int(config.get("original_max_position_embeddings", derived_int))
            steps.append(f"LongRoPE: served at original_max_position_embeddings, {value:,}")
        return MaxLen(derived_int, key, value, requested, tuple(steps), auto=requested == -1)
    if requested <= derived:
        return MaxLen(derived_int, key, requested, requested, tuple(steps))
    model_max = config.get("model_max_length")
    if model_max is not None and requested <= model_max:
        return MaxLen(derived_int, key, requested, requested, tuple(steps))
    allowed = str((env or {}).get("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "")).lower() in ("1", "true")
    text = (
        f"User-specified max_model_len ({requested}) is greater than the derived max_model_len "
        f"({key}={derived} or model_max_length={model_max} in model's config.json)."
    )
    if not allowed:
        text += (
            " To allow overriding this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1."
        )
    return MaxLen(
        derived_int,
        key,
        requested,
        requested,
        tuple(steps),
        over_limit=True,
        allowed_by_env=allowed,
        vllm_text=text,
    )


def _scale(
    derived: float,
    rope: list[dict[str, Any]],
    rules: dict[str, Any],
    config: Mapping[str, Any],
    steps: list[str],
) -> float:
    factor: float | None = 1.0
    for rp in rope:
        rope_type = rp["rope_type"]
        if rope_type in rules["unscaled_rope_types"]:
            if rp.get("factor") not in (None, 1, 1.0):
                steps.append(
                    f"RoPE {rope_type}: factor {rp['factor']:g} not applied (the config's "
                    "length is taken as already scaled)"
                )
            continue
        factor = rp.get("factor", factor)
        if rope_type == "yarn" and rules["yarn_from_original"]:
            original = rp.get("original_max_position_embeddings") or config.get(
                "max_position_embeddings", derived
            )
            derived = original
            steps.append(f"YaRN: from original_max_position_embeddings = {int(original):,}")
    if factor is None:
        factor = 1.0  # vLLM: a null factor falls back to 1.0 (with a warning)
    if factor != 1.0:
        steps.append(f"x RoPE factor {factor:g} = {int(derived * factor):,}")
    return derived * factor
