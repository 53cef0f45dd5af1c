"""Entry verdicts: why an ignore entry is kept or refused."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import regex

from servecheck.fix.agreement import resolves_quantized
from servecheck.fix.facts import IgnoreContext, display_template
from servecheck.model.inventory import (
    EXPERTS,
)

# Entry verdicts (why an ignore entry is kept or refused)


@dataclass(frozen=True)
class EntryVerdict:
    entry: str
    source: str  # "current", "headers", "conventional", "norm pattern", "per layer (N layers)"
    accepted: bool
    code: str  # short reason key, for grouping: see REASONS
    reason: str
    covers: tuple[str, ...] = ()  # consulted modules it covers (vLLM names)

    def as_dict(self) -> dict:
        return {
            "entry": self.entry,
            "source": self.source,
            "accepted": self.accepted,
            "reason_code": self.code,
            "reason": self.reason,
            "covers": list(self.covers[:20]),
            "covers_count": len(self.covers),
        }


REASONS = {
    "keeps": "keeps modules stored 16-bit unquantized",
    "no-effect": "accepted, but changes nothing in vLLM",
    "unknown": "accepted; stored dtypes unknown (config only)",
    "nothing": "matches nothing vLLM quantizes",
    "quantized": "would ignore modules stored quantized",
    "split": "would split a fused layer or an MoE block",
    "fp8-regex": "fp8 ignore lists match exact names only",
    "duplicate": "duplicate entry",
    "redundant": "left out of the derived list",
}


def matches(ctx: IgnoreContext, entry: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(consulted hits as (module, role, name), descriptions of unconsulted names hit)."""
    hits: list[tuple[str, str, str]] = []
    other: list[str] = []
    if entry.startswith("re:") and ctx.kind != "fp8":
        rx = regex.compile(entry[3:])
        for name, owners in ctx.index.items():
            if rx.match(name) is not None:
                hits.extend((mod, role, name) for mod, role in owners)
        for name, desc in ctx.others.items():
            if rx.match(name) is not None:
                other.append(desc)
        return hits, other
    hits.extend((mod, role, entry) for mod, role in ctx.index.get(entry, ()))
    if ctx.kind == "fp8" and "experts" in entry:
        # vLLM 0.33 quant_utils.py is_layer_skipped: an experts prefix is skipped when it is a
        # substring of an ignored entry that mentions "experts"
        for f in ctx.facts.values():
            if f.ignorable and f.module.kind == EXPERTS and f.name in entry and f.name != entry:
                hits.append((f.name, "module", entry))
    if entry in ctx.others:
        other.append(ctx.others[entry])
    return hits, other


def evaluate_entries(ctx: IgnoreContext, entries: Sequence[tuple[str, str]]) -> list[EntryVerdict]:
    """Judge each (entry, source): refuse entries that match nothing vLLM quantizes, ignore a
    module stored quantized, or split a fused layer / MoE block (given the accepted others)."""
    verdicts: dict[int, EntryVerdict] = {}
    hits_of: dict[int, list[tuple[str, str, str]]] = {}
    seen: set[str] = set()
    for i, (entry, source) in enumerate(entries):
        if entry in seen:
            verdicts[i] = EntryVerdict(entry, source, False, "duplicate", "already listed")
            continue
        seen.add(entry)
        if ctx.kind == "fp8" and entry.startswith("re:"):
            verdicts[i] = EntryVerdict(
                entry,
                source,
                False,
                "fp8-regex",
                "fp8 ignored_layers are compared by exact name (vLLM 0.33 quant_utils.py "
                "is_layer_skipped, match_mode 'exact'): a 're:' entry matches nothing",
            )
            continue
        hits, other = matches(ctx, entry)
        if not hits:
            if other:
                desc = other[0] + (f" (and {len(other) - 1} more)" if len(other) > 1 else "")
                reason = f"matches nothing vLLM quantizes: {desc}"
            else:
                reason = "matches no module of this model"
                bare = [n for n in ctx.index if n.endswith("." + entry)]
                if bare and not entry.startswith("re:"):
                    reason += f" (vLLM compares names exactly: {entry!r} is not {bare[0]!r})"
            verdicts[i] = EntryVerdict(entry, source, False, "nothing", reason)
            continue
        bad = []
        for mod, _, _ in hits:
            why = ctx.forbidden(mod)
            if why and mod not in bad:
                bad.append(mod)
        if bad:
            why = ctx.forbidden(bad[0])
            more = f" (and {len(bad) - 1} more modules)" if len(bad) > 1 else ""
            verdicts[i] = EntryVerdict(
                entry, source, False, "quantized", f"{why}{more}", tuple(bad)
            )
            continue
        hits_of[i] = hits
    # Split check over the accepted set, repeated until stable.
    while True:
        split = _splits(ctx, hits_of, entries)
        if not split:
            break
        for i, reason in split.items():
            entry, source = entries[i]
            covers = tuple(dict.fromkeys(mod for mod, _, _ in hits_of[i]))
            verdicts[i] = EntryVerdict(entry, source, False, "split", reason, covers)
            del hits_of[i]
    base = None if ctx.config_only else ctx.baseline()
    for i, hits in hits_of.items():
        entry, source = entries[i]
        covers = tuple(dict.fromkeys(mod for mod, _, _ in hits))
        if base is None:
            verdicts[i] = EntryVerdict(
                entry,
                source,
                True,
                "unknown",
                f"covers {names_text(covers)}; stored dtypes unknown (config only)",
                covers,
            )
            continue
        effective = [m for m in covers if resolves_quantized(base[m])]
        if effective:
            stored = sorted({ctx.facts[m].stored for m in effective})
            verdicts[i] = EntryVerdict(
                entry,
                source,
                True,
                "keeps",
                f"keeps {names_text(effective)} unquantized, as stored ({', '.join(stored)})",
                covers,
            )
        else:
            verdicts[i] = EntryVerdict(
                entry,
                source,
                True,
                "no-effect",
                f"no effect in vLLM: {names_text(covers)} would not be quantized anyway ("
                + (
                    "fp8 quantizes LinearBase layers and experts only"
                    if ctx.kind == "fp8"
                    else "no config group targets it"
                )
                + ")",
                covers,
            )
    return [verdicts[i] for i in range(len(entries))]


def names_text(names: Sequence[str], limit: int = 2) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _splits(
    ctx: IgnoreContext,
    hits_of: dict[int, list[tuple[str, str, str]]],
    entries: Sequence[tuple[str, str]],
) -> dict[int, str]:
    """Entries whose units leave a fused layer or MoE block partly covered."""
    whole: set[str] = set()
    covered: dict[str, set[str]] = {}
    for i, hits in hits_of.items():
        is_regex = entries[i][0].startswith("re:")
        for mod, role, _ in hits:
            if role == "module":
                f = ctx.facts[mod]
                # vLLM 0.11/0.24 should_ignore_layer test a fused layer's shards unless its
                # fused name is listed verbatim: a regex on the fused name does not count
                if (
                    ctx.kind == "ct"
                    and is_regex
                    and ctx.mode == "shards_unless_listed"
                    and f.module.short_name in ctx.packed
                ):
                    continue
                whole.add(mod)
            else:
                covered.setdefault(mod, set())
        for mod, role, name in hits:
            if role == "unit":
                covered[mod].add(name)
    out: dict[int, str] = {}
    for mod, units in covered.items():
        f = ctx.facts[mod]
        if mod in whole or units >= set(f.units):
            continue
        missing = [u for u in f.units if u not in units]
        got = sorted({u.rsplit(".", 1)[-1] for u in units})
        miss = sorted({u.rsplit(".", 1)[-1] for u in missing})
        if f.module.kind == EXPERTS:
            n_exp = len({u.rsplit(".", 2)[-2] for u in units})
            reason = (
                f"splits MoE block {mod}: covers {', '.join(got[:3])} of {n_exp} of its "
                f"{len(f.units) // 3} experts, not all projections of all experts (vLLM builds "
                "one method for the block and raises ValueError when they differ)"
            )
        else:
            reason = (
                f"splits fused layer {mod}: covers {', '.join(got[:4])} but not "
                f"{', '.join(miss[:4])} (vLLM requires one scheme for all shards and raises "
                "ValueError)"
            )
        for i, hits in hits_of.items():
            if any(m == mod and role == "unit" for m, role, _ in hits):
                out.setdefault(i, reason)
    return out


def group_verdicts(verdicts: Iterable[EntryVerdict]) -> list[tuple[str, list[EntryVerdict]]]:
    """Verdicts grouped by (layer-independent entry, accepted, reason code), in first order."""
    groups: dict[tuple, list[EntryVerdict]] = {}
    for v in verdicts:
        key = (display_template(v.entry), v.accepted, v.code, v.source)
        groups.setdefault(key, []).append(v)
    return [(k[0], vs) for k, vs in groups.items()]
