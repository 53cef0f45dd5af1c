"""The checkpoint strategy: the shortest exact ignore list derived from the headers."""

from __future__ import annotations

import re
from collections.abc import Sequence

import regex

from servecheck.fix.agreement import resolves_quantized
from servecheck.fix.facts import FLOAT, IgnoreContext, ModuleFacts, display_template, template
from servecheck.model.inventory import (
    EXPERTS,
    LM_HEAD,
)

# The checkpoint strategy: derive the list from the headers


def required(ctx: IgnoreContext) -> list[ModuleFacts]:
    """Consulted modules stored 16-bit that the config would quantize (and a 16-bit lm_head)."""
    base = ctx.baseline()
    out = []
    for f in ctx.facts.values():
        if not f.ignorable or f.state != FLOAT:
            continue
        if f.module.kind == LM_HEAD or resolves_quantized(base[f.name]):
            out.append(f)
    return out


def _allowed_names(ctx: IgnoreContext) -> set[str]:
    """Names a derived pattern may match: those of consulted modules stored 16-bit."""
    return {
        n
        for f in ctx.facts.values()
        if f.ignorable and f.state == FLOAT
        for n in (f.name, *f.units)
    }


def derive_entries(ctx: IgnoreContext, use_regex: bool = True) -> list[tuple[str, str]]:
    """The shortest exact ignore list for the required modules, as (entry, explanation)."""
    req = required(ctx)
    if ctx.kind == "fp8":
        out = []
        for f in req:
            if f.module.kind == EXPERTS:
                # the block prefix: is_layer_skipped's experts rule skips the whole block
                out.append((f.name, f"MoE block stored {f.stored}"))
            else:
                out += [(u, f"stored {f.stored}") for u in f.units]
        return out
    names: list[str] = []
    for f in req:
        names.extend(f.units)
    allowed = _allowed_names(ctx)
    groups: dict[tuple, list[str]] = {}
    for n in names:
        groups.setdefault(template(n), []).append(n)
    entries: list[tuple[str, str]] = []
    order: dict[str, int] = {n: i for i, n in enumerate(names)}
    for tpl, group in groups.items():
        pattern = _exact_regex(ctx, tpl, group, allowed) if use_regex else None
        if pattern is not None:
            entries.append((pattern, f"{len(group)} × {display_template(group[0])}"))
            continue
        per_layer = _per_layer_regexes(ctx, tpl, group, allowed) if use_regex else None
        if per_layer is not None:
            entries += per_layer
            continue
        entries += [(n, "") for n in group]
    # lm_head last, as llm-compressor writes it; otherwise inventory order
    first = {}
    for e, _ in entries:
        first[e] = min((order[n] for n in names if _entry_matches(e, n)), default=len(order))
    entries.sort(key=lambda x: (x[0] == "lm_head", first[x[0]]))
    return entries


def _entry_matches(entry: str, name: str) -> bool:
    if entry.startswith("re:"):
        return regex.match(entry[3:], name) is not None
    return entry == name


def _regex_from(tokens: Sequence[str | None], anchored_prefix: str = ".*") -> str:
    parts = [r"\d+" if t is None else re.escape(t) for t in tokens]
    return "re:" + anchored_prefix + r"\.".join(parts) + "$"


def _exact_regex(ctx: IgnoreContext, tpl: tuple, group: list[str], allowed: set[str]) -> str | None:
    """The shortest `re:.*<suffix>$` matching every name of `group` and nothing outside the
    allowed names, over every name vLLM tests; None when the template has no numeric part
    (a singleton like lm_head stays a name) or no suffix is exact."""
    if None not in tpl:
        return None
    universe = ctx.universe()
    group_set = set(group)
    n = len(tpl)
    for start in range(n - 2, -1, -1):
        if tpl[start] is None:
            continue
        # vLLM matches `re:` with regex.match: anchored at the start only; `.*` + `$` anchors
        # the suffix (vLLM 0.33 quantization/utils/config_utils.py is_equal_or_regex_match)
        pattern = _regex_from(tpl[start:], ".*" if start > 0 else "")
        rx = regex.compile(pattern[3:])
        hit = {u for u in universe if rx.match(u) is not None}
        if group_set <= hit and hit <= allowed:
            return pattern
    return None


def _per_layer_regexes(
    ctx: IgnoreContext, tpl: tuple, group: list[str], allowed: set[str]
) -> list[tuple[str, str]] | None:
    """For names with a layer and an expert index: one anchored regex per layer."""
    numeric = [i for i, t in enumerate(tpl) if t is None]
    if len(numeric) < 2:
        return None
    first = numeric[0]
    by_layer: dict[str, list[str]] = {}
    for g in group:
        by_layer.setdefault(g.split(".")[first], []).append(g)
    universe = ctx.universe()
    out = []
    for layer, names in by_layer.items():
        tokens = list(tpl)
        tokens[first] = layer
        pattern = _regex_from(tokens, "")
        rx = regex.compile(pattern[3:])
        hit = {u for u in universe if rx.match(u) is not None}
        if not (set(names) <= hit and hit <= allowed):
            return None
        out.append((pattern, f"{len(names)} × {display_template(names[0])} in layer {layer}"))
    return out
