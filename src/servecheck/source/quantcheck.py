"""The JSON types of a checkpoint's quantization configs, checked once where they are read.

Each key listed in knowledge/quant_config_types.toml is checked wherever it appears in a
quantization config's tree, so the parsers in quant/ meet only the types vLLM's from_config
methods expect; anything else is an InputError naming the file and key path.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from servecheck.errors import InputError
from servecheck.knowledge import load_toml
from servecheck.source.jsonin import key_path

# Side files that are quantization configs (ModelOpt, AWQ, GPTQ).
QUANT_SIDE_FILES = ("hf_quant_config.json", "quant_config.json", "quantize_config.json")
_CONFIG_KEYS = ("quantization_config", "compression_config")
_TEXT_KEYS = ("text_config", "language_config", "llm_config", "thinker_config")


@functools.cache
def _types() -> dict[str, dict[str, Any]]:
    return load_toml("quant_config_types.toml")["key"]


def check_quant_configs(config: Mapping[str, Any], side_files: Mapping[str, Any]) -> None:
    """Check every quantization config of a checkpoint: config.json's (top level and a nested
    text config) and the quantization side files."""
    for key in _CONFIG_KEYS:
        if key in config:
            check_quant_config(config[key], "config.json", (key,))
    for text_key in _TEXT_KEYS:
        nested = config.get(text_key)
        if isinstance(nested, dict) and "quantization_config" in nested:
            check_quant_config(
                nested["quantization_config"], "config.json", (text_key, "quantization_config")
            )
    for name in QUANT_SIDE_FILES:
        if name in side_files:
            check_quant_config(side_files[name], name, ())


def check_quant_config(value: Any, file: str, path: tuple = ()) -> None:
    """Walk one quantization config (depth already bounded by jsonin) and check each key."""
    if value is None:
        return
    if not isinstance(value, dict):
        where = key_path(path)
        raise InputError(f"{file}: {where} is {_kind(value)}; expected an object")
    types = _types()
    stack: list[tuple[Any, tuple]] = [(value, path)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, dict):
            for k, v in item.items():
                rule = types.get(k)
                if rule is not None:
                    _check(v, rule, file, (*at, k))
                if isinstance(v, (dict, list)):
                    stack.append((v, (*at, k)))
        elif isinstance(item, list):
            stack.extend((v, (*at, i)) for i, v in enumerate(item) if isinstance(v, (dict, list)))


def _check(value: Any, rule: Mapping[str, Any], file: str, path: tuple) -> None:
    kinds = rule["kinds"]
    if any(_is(value, kind) for kind in kinds):
        ints = value if isinstance(value, list) else [value]
        lo, hi = rule.get("min"), rule.get("max")
        for i in ints:
            if type(i) is not int:
                continue
            if (lo is not None and i < lo) or (hi is not None and i > hi) or i == rule.get("not"):
                raise InputError(
                    f"{file}: {key_path(path)} is {_short(value)}; expected {_range(rule)}"
                )
        return
    expected = " or ".join(_WORDS[k] for k in kinds)
    raise InputError(f"{file}: {key_path(path)} is {_short(value)}; expected {expected}")


def _is(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return type(value) is int
    if kind == "dict":
        return isinstance(value, dict)
    if not isinstance(value, list):
        return False
    if kind == "list_of_str":
        return all(isinstance(v, str) for v in value)
    if kind == "list_of_int":
        return all(type(v) is int for v in value)
    if kind == "list_of_dict":
        return all(isinstance(v, dict) for v in value)
    if kind == "list_of_str_lists":
        return all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in value)
    raise ValueError(f"unknown kind {kind!r} in quant_config_types.toml")


_WORDS = {
    "null": "null",
    "str": "a string",
    "bool": "true or false",
    "int": "an integer",
    "dict": "an object",
    "list_of_str": "a list of strings",
    "list_of_int": "a list of integers",
    "list_of_dict": "a list of objects",
    "list_of_str_lists": "a list of lists of strings",
}


def _range(rule: Mapping[str, Any]) -> str:
    text = f"integers from {rule.get('min')} to {rule.get('max')}"
    return text + (f", not {rule['not']}" if "not" in rule else "")


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", dict: "an object"}.get(
        type(value), "a number"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
