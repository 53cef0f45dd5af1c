"""Converting option values the way vLLM's argparse types do.

Each function raises ValueError with the text argparse would print after "argument --x: ".
"""

from __future__ import annotations

import json
import re
from typing import Any

from servecheck.launch.table import ArgSpec

_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_BINARY = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def human_readable_int(text: str) -> int:
    """vLLM 0.33 utils/argparse_utils.py human_readable_int: 1k = 1000, 1K = 1024, 25.6k."""
    value = text.strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgGtT])", value)
    if match:
        number, suffix = match.groups()
        if suffix in _DECIMAL:
            return int(float(number) * _DECIMAL[suffix])
        if "." in number:
            raise ValueError(
                f"Decimals are not allowed with binary suffixes like {suffix}. Did you mean to "
                f"use {number}{suffix.lower()} instead?"
            )
        return int(number) * _BINARY[suffix]
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"invalid human_readable_int value: {text!r}") from None


def human_readable_int_or_auto(text: str) -> int:
    """vLLM 0.33 human_readable_int_or_auto: also -1 or 'auto' (fit to the memory left)."""
    if text.strip() == "-1" or text.strip().lower() == "auto":
        return -1
    try:
        return human_readable_int(text)
    except ValueError as exc:
        if str(exc).startswith("invalid human_readable_int value"):
            raise ValueError(f"invalid human_readable_int_or_auto value: {text!r}") from None
        raise


def union_dict_and_str(text: str) -> Any:
    """vLLM engine/arg_utils.py union_dict_and_str: JSON when it looks like an object."""
    if not re.match(r"(?s)^\s*{.*}\s*$", text):
        return text
    return _json(text)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON {text!r}: {exc.msg} at position {exc.pos}") from None
    except (RecursionError, ValueError):  # nested too deep, or a number of 4,300+ digits
        raise ValueError(f"invalid JSON {text[:60]!r}...: nested too deep or too long") from None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"invalid int value: {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"invalid float value: {text!r}") from None


_CONVERT = {
    "int": _int,
    "float": _float,
    "human_int": human_readable_int,
    "human_int_or_auto": human_readable_int_or_auto,
    "json": _json,
    "dict_or_str": union_dict_and_str,
    "str": str,
    "optional_flag": str,
}


def convert(spec: ArgSpec, text: str) -> Any:
    """One value of `spec` from its command-line text."""
    if spec.optional and text in ("", "None"):
        # vLLM engine/arg_utils.py optional_type
        return None
    if spec.kind == "choice":
        value: Any = _int(text) if spec.value_type == "int" else text
        if spec.choices is not None and value not in spec.choices:
            listed = ", ".join(repr(c) for c in spec.choices)
            raise ValueError(f"invalid choice: {value!r} (choose from {listed})")
        return value
    if spec.kind == "list":
        kind = {"int": "int", "float": "float"}.get(spec.value_type or "str", "str")
        value = _CONVERT[kind](text)
        if spec.choices is not None and value not in spec.choices:
            listed = ", ".join(repr(c) for c in spec.choices)
            raise ValueError(f"invalid choice: {value!r} (choose from {listed})")
        return value
    return _CONVERT.get(spec.kind, str)(text)


def dotted_value(text: str, human_ints: bool) -> Any:
    """A `--json-arg.key value` value: JSON, else a human-readable size (0.20+), else text."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        pass
    except ValueError:  # a number of 4,300+ digits
        return text
    if human_ints:
        try:
            return human_readable_int(text)
        except ValueError:
            pass
    return text
